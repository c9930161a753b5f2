"""Jitsi Meet: web (nginx + the Meet app), prosody (XMPP), jicofo (focus) and jvb (the videobridge).

Objects (all in the tenant namespace):
- ConfigMap ``jitsi-env``: the environment every Jitsi container reads (XMPP domains, prosody's address, the
  public URL, defaults, ``extraConfig``). No secret goes there.
- Secret ``jitsi-auth`` is *declared* (``secrets()``): JICOFO_AUTH_PASSWORD and JVB_AUTH_PASSWORD, 32 random
  characters each; containers read them through ``secretKeyRef`` (the images read no file: ``container_env``).
- ``jitsi-web``: Deployment (``webReplicas``, PDB above 1), Service 80 -> 8000, Ingress ``meet.<domain>``.
- ``jitsi-prosody``: Deployment (1 replica, Recreate), Service 5222/5280/5347.
- ``jitsi-jicofo``: Deployment (1 replica, Recreate); nothing connects to it, so no Service.
- ``jitsi-jvb``: Deployment (``jvbReplicas``, PDB above 1), ClusterIP Service ``jitsi-jvb`` (port ``metrics``
  8080: ``/metrics``, ``/colibri/stats``, ``/about/health``), the media exposure of ``jvb.type`` and a
  NetworkPolicy letting UDP media in from anywhere (the tenancy baseline denies all other ingress);
  a ServiceMonitor when ``spec.monitoring.serviceMonitors`` and the cluster serves the Prometheus Operator API.

Every container runs as uid/gid 1000 with the restricted context and a read-only root filesystem. That is
what the hardened Jitsi images (``stable-11146-1`` and later) support; older images run as root under
s6-overlay v1 and do not start under this context (see docs/components/jitsi.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...api.models import COUNTRIES, Jitsi, Tenant
from ...api.validation import InputError, Problem, effective_components
from ...api.derived_names import tls_secret_name
from ...api.host_ports import host_port_problems
from ..ingress import annotations as ingress_annotations
from ..base import (
    image_version,
    RenderContext,
    SecretKey,
    SecretSpec,
    container_security,
    merge_extra_config,
    pod_security,
    render_template,
)

HERE = str(Path(__file__).parent)
COMPONENT = "jitsi"
WEB, PROSODY, JICOFO, JVB, JVB_MEDIA = "jitsi-web", "jitsi-prosody", "jitsi-jicofo", "jitsi-jvb", "jitsi-jvb-media"
CONFIG_NAME = "jitsi-env"
SECRET_NAME = "jitsi-auth"
# No JICOFO_COMPONENT_SECRET: nothing in the images of docker-jitsi-meet stable-11146-1 reads it (only its
# docker-compose.yml still lists it), so it is neither generated nor passed (issue 22, item 17: no unused secret in
# an environment). A jitsi-auth Secret made by an older operator keeps the key; nothing reads it.
SECRET_KEYS = ("JICOFO_AUTH_PASSWORD", "JVB_AUTH_PASSWORD")
SECRET_LENGTH = 32

UID = 1000  # the "s6" user of the hardened Jitsi images
WEB_PORT = 8000  # the hardened web image's nginx listens on 8000 (80 needs root); the Service publishes 80
PROSODY_PORTS = {"xmpp-c2s": 5222, "http": 5280, "xmpp-component": 5347}
JICOFO_PORT = 8888
JVB_HTTP_PORT = 8080  # JVB's private HTTP server: /about/health, /colibri/stats, /metrics
NODE_PORT_BASE = 30000  # jvb.nodePort when not set: NODE_PORT_BASE + the country's index in COUNTRIES
XMPP_DOMAIN = "meet.jitsi"  # internal XMPP domain (never shown to users); the docker-jitsi-meet default
# nginx's resolver (web -> prosody) does not apply the pod's DNS search path, so web needs a fully qualified
# name; the cluster DNS domain is not part of the NationalCloud API yet.
CLUSTER_DOMAIN = "cluster.local"

# Environment the operator sets but extraConfig may override.
DEFAULTS = {
    "TZ": "UTC",
    "ENABLE_AUTH": "0",
    "ENABLE_GUESTS": "1",
    "ENABLE_XMPP_WEBSOCKET": "1",
}
# Set from jitsi.stunServers (container env): extraConfig may not set them, the field says what to do.
STUN_VARIABLES = ("JVB_DISABLE_STUN", "JVB_STUN_SERVERS", "P2P_STUN_SERVERS", "ENABLE_P2P")

# Writable paths (emptyDir) under the read-only root filesystem: name -> (mount path, size limit).
RUN_TMP = {"run": ("/run", "64Mi"), "tmp": ("/tmp", "256Mi")}
EXTRA_VOLUMES = {
    # Nothing for nginx: the image replaces /var/lib/nginx with a symlink to /run/web/tmp (docker-jitsi-meet
    # web/Dockerfile, stable-11146-1), so its temp paths are on the /run emptyDir; mounting a volume over
    # the symlink is refused by recent runc and the pod never starts (jitsi-helm mounts only /run and /tmp).
    WEB: {},
    PROSODY: {"prosody-data": ("/var/lib/prosody", "256Mi")},  # accounts + certs, rebuilt at every start
    JICOFO: {},
    JVB: {},
}


# ---- helpers ---------------------------------------------------------------------------------------------

def _tenant_override(ctx: RenderContext) -> dict[str, Any]:
    return ctx.tenant.components.get("jitsi") or {}


def field_path(ctx: RenderContext, *fields: str) -> str:
    """``spec.components.jitsi.<fields>``, or the tenant's override path when the tenant sets that field."""
    node: Any = _tenant_override(ctx)
    for f in fields:
        if not isinstance(node, dict) or f not in node:
            return "spec.components.jitsi." + ".".join(fields)
        node = node[f]
    index = ctx.suite.spec.tenants.index(ctx.tenant)
    return f"spec.tenants[{index}].components.jitsi." + ".".join(fields)


def secret_env(*keys: str) -> list[dict[str, Any]]:
    return [{"name": k, "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": k}}} for k in keys]


def plain_env(values: dict[str, str]) -> list[dict[str, Any]]:
    return [{"name": k, "value": v} for k, v in values.items()]


def volumes_for(part: str) -> dict[str, tuple[str, str]]:
    return {**RUN_TMP, **EXTRA_VOLUMES[part]}


# ---- JVB media exposure ----------------------------------------------------------------------------------

def check_exposure(ctx: RenderContext) -> None:
    """Combinations that render fine but cannot carry media: refuse them with the field to change."""
    jitsi = ctx.components.jitsi
    jvb = jitsi.jvb
    problems = []
    if jvb.type == "LoadBalancer":
        if not jvb.advertised_address:
            problems.append(Problem(
                field_path(ctx, "jvb", "advertisedAddress"),
                "required when jvb.type is LoadBalancer: JVB must advertise the load balancer's public address "
                "(without it JVB advertises a pod or node address and media fails); reserve the address first",
            ))
        if jitsi.jvb_replicas > 1:
            problems.append(Problem(
                field_path(ctx, "jvbReplicas"),
                "must be 0 or 1 with jvb.type LoadBalancer: one load balancer port would spread a conference's "
                "UDP packets over several bridges; use NodePort or HostPort to run more bridges",
            ))
    elif jvb.advertised_address and jitsi.jvb_replicas > 1:
        problems.append(Problem(
            field_path(ctx, "jvb", "advertisedAddress"),
            f"cannot be set with jvbReplicas > 1 and jvb.type {jvb.type}: every bridge would advertise the same "
            "address; leave it unset so that each bridge advertises the IP of its own node",
        ))
    problems += [Problem(path, message) for path, message in host_port_problems(
        jitsi, ctx.cloud, field_path(ctx, "jvb", "type"), field_path(ctx, "jvb", "udpPort"))]
    if problems:
        raise InputError(problems)


def node_port_of(ctx: RenderContext, tenant: Tenant, jitsi: Jitsi) -> int:
    """The tenant's media node port. Node ports are cluster-wide and all tenants share one cluster today, so
    when nodePort is not written anywhere each country gets its own: NODE_PORT_BASE + its index in COUNTRIES
    (stable when tenants are added, removed or reordered)."""
    if jitsi.jvb.node_port is not None:
        return jitsi.jvb.node_port
    return NODE_PORT_BASE + COUNTRIES.index(tenant.country)


def check_node_port(ctx: RenderContext) -> None:
    """Two tenants of the suite may not claim the same node port (reported on the later tenant)."""
    mine = node_port_of(ctx, ctx.tenant, ctx.components.jitsi)
    for index, other in enumerate(ctx.suite.spec.tenants):
        if other is ctx.tenant:
            return
        theirs = effective_components(ctx.suite, other).jitsi
        if theirs.enabled and theirs.jvb.type == "NodePort" and node_port_of(ctx, other, theirs) == mine:
            raise InputError([Problem(
                field_path(ctx, "jvb", "nodePort"),
                f"node port {mine} is also the JVB media port of spec.tenants[{index}] ({other.country}); "
                "node ports are cluster-wide: give each tenant its own (spec.tenants[].components.jitsi.jvb.nodePort)",
            )])


def media_port(ctx: RenderContext) -> int:
    """The UDP port JVB listens on and advertises. With NodePort that is the node port itself: clients reach
    the node port, and JVB advertises the port it listens on, so the two must be equal (jitsi-helm,
    docs/guides/exposing.md)."""
    jitsi = ctx.components.jitsi
    return node_port_of(ctx, ctx.tenant, jitsi) if jitsi.jvb.type == "NodePort" else jitsi.jvb.udp_port


def advertise_env(jitsi: Jitsi) -> dict[str, Any]:
    if jitsi.jvb.advertised_address:
        return {"name": "JVB_ADVERTISE_IPS", "value": jitsi.jvb.advertised_address}
    # HostPort/NodePort: the IP of the node the pod runs on (its InternalIP; see the docs for NAT).
    return {"name": "JVB_ADVERTISE_IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}


def jvb_affinity(ctx: RenderContext) -> dict[str, Any]:
    affinity = ctx.region_affinity()
    if ctx.components.jitsi.jvb.type in ("HostPort", "NodePort"):
        # One bridge per node: with HostPort two bridges cannot bind the same node port; with NodePort
        # (externalTrafficPolicy Local) a node must hand its media to the one bridge advertising its IP.
        affinity["podAntiAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": ctx.selector(COMPONENT, JVB)}, "topologyKey": "kubernetes.io/hostname"}
            ]
        }
    return affinity


def web_affinity(ctx: RenderContext) -> dict[str, Any]:
    affinity = ctx.region_affinity()
    affinity["podAntiAffinity"] = {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 100,
                "podAffinityTerm": {
                    "labelSelector": {"matchLabels": ctx.selector(COMPONENT, WEB)},
                    "topologyKey": "kubernetes.io/hostname",
                },
            }
        ]
    }
    return affinity


# ---- environment -----------------------------------------------------------------------------------------

def common_env(ctx: RenderContext) -> dict[str, str]:
    """The owned part of the shared environment."""
    return {
        "XMPP_DOMAIN": XMPP_DOMAIN,
        "XMPP_AUTH_DOMAIN": f"auth.{XMPP_DOMAIN}",
        "XMPP_MUC_DOMAIN": f"muc.{XMPP_DOMAIN}",
        "XMPP_INTERNAL_MUC_DOMAIN": f"internal-muc.{XMPP_DOMAIN}",
        "XMPP_GUEST_DOMAIN": f"guest.{XMPP_DOMAIN}",
        # Java (jicofo, jvb) resolves through the pod's search path: the Service name is enough.
        "XMPP_SERVER": PROSODY,
        "XMPP_BOSH_URL_BASE": f"http://{PROSODY}.{ctx.namespace}.svc.{CLUSTER_DOMAIN}:{PROSODY_PORTS['http']}",
        "PUBLIC_URL": f"https://{ctx.host('meet')}",
    }


def stun_env(jitsi: Jitsi) -> tuple[dict[str, str], dict[str, str]]:
    """(jvb, web) environment for jitsi.stunServers. The jvb image's jvb.conf template falls back to
    meet-jit-si-turnrelay.jitsi.net:443 when JVB_STUN_SERVERS is unset *or empty* (sprig ``default``), so no
    STUN must be said with JVB_DISABLE_STUN=true (docker-jitsi-meet jvb/rootfs/defaults/jvb.conf,
    stable-11146-1). The web image's config.js only sets p2p.stunServers from P2P_STUN_SERVERS
    (web/rootfs/defaults/settings-config.js), and browsers then fall back to lib-jitsi-meet's own default,
    ``DEFAULT_STUN_SERVERS`` = stun:meet-jit-si-turnrelay.jitsi.net:443 (jitsi/lib-jitsi-meet modules/xmpp/xmpp.ts,
    ``this.options.p2p?.stunServers || DEFAULT_STUN_SERVERS``; unchanged since 2019). Without a STUN server of the
    suite's, peer-to-peer is off (ENABLE_P2P=false: every call goes through the tenant's JVB), so no browser
    asks Jitsi's public server either."""
    if not jitsi.stun_servers:
        return {"JVB_DISABLE_STUN": "true"}, {"ENABLE_P2P": "false"}
    servers = ",".join(jitsi.stun_servers)
    return {"JVB_DISABLE_STUN": "false", "JVB_STUN_SERVERS": servers}, {"P2P_STUN_SERVERS": servers,
                                                                         "ENABLE_P2P": "true"}


def container_env(ctx: RenderContext) -> dict[str, list[dict[str, Any]]]:
    """Per-container environment (set on the container, so it wins over the ConfigMap)."""
    jitsi = ctx.components.jitsi
    jvb_stun, web_stun = stun_env(jitsi)
    return {
        # TLS ends at the Ingress; no certificate (and nothing to write) in the web container.
        WEB: plain_env({"DISABLE_HTTPS": "1", "ENABLE_HTTP_REDIRECT": "0", "ENABLE_LETSENCRYPT": "0", **web_stun}),
        # prosody registers the focus and jvb users and the focus component with these at every start.
        PROSODY: secret_env(*SECRET_KEYS),
        # The passwords stay environment variables: the images of docker-jitsi-meet stable-11146-1 write their
        # configuration from templates that read the environment only (jicofo/rootfs/defaults/jicofo.conf,
        # jvb/rootfs/defaults/jvb.conf: {{ .Env.JICOFO_AUTH_PASSWORD }}, {{ $ENV.JVB_AUTH_PASSWORD }}; prosody's
        # s6 script register-setup: prosodyctl ... user create ... $JVB_AUTH_PASSWORD), with no *_FILE form.
        # Jicofo's REST server (8888, what the probes check) binds 127.0.0.1 unless the REST module is
        # enabled: then the image's jicofo.conf sets rest.host 0.0.0.0 (jicofo reference.conf; docker-jitsi-meet
        # jicofo/rootfs/defaults/jicofo.conf; jitsi-helm sets JICOFO_ENABLE_REST "true" the same way).
        JICOFO: secret_env("JICOFO_AUTH_PASSWORD")
        + plain_env({"JICOFO_ENABLE_REST": "true"}),
        JVB: secret_env("JVB_AUTH_PASSWORD")
        + plain_env({"JVB_PORT": str(media_port(ctx)), "COLIBRI_REST_ENABLED": "true", **jvb_stun})
        + [advertise_env(jitsi)],
    }


def config_data(ctx: RenderContext, per_container: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """DEFAULTS, then the owned common environment, then extraConfig (which may not name an owned variable,
    including the ones set on a container, which would silently win over the ConfigMap)."""
    owned = dict(common_env(ctx))
    for env in per_container.values():
        owned.update({e["name"]: "" for e in env})
    owned.update({name: "" for name in STUN_VARIABLES})  # also when unset: jitsi.stunServers says it
    extra = ctx.components.jitsi.extra_config
    tenant_keys = set((_tenant_override(ctx).get("extraConfig") or {}))
    problems: list[Problem] = []
    for from_tenant in (False, True):
        part = {k: v for k, v in extra.items() if (k in tenant_keys) == from_tenant}
        path = field_path(ctx, "extraConfig") if from_tenant else "spec.components.jitsi.extraConfig"
        try:
            merge_extra_config(owned, part, path)
        except InputError as err:
            problems += err.problems
    if problems:
        raise InputError(problems)
    return {**DEFAULTS, **common_env(ctx), **extra}


# ---- render ----------------------------------------------------------------------------------------------

def secrets(ctx: RenderContext) -> list[SecretSpec]:
    return [
        SecretSpec(
            name=SECRET_NAME,
            namespace=ctx.namespace,
            component=COMPONENT,
            keys={k: SecretKey("random", SECRET_LENGTH) for k in SECRET_KEYS},
            labels=ctx.labels(COMPONENT),
        )
    ]


def render(ctx: RenderContext) -> list[dict[str, Any]]:
    check_exposure(ctx)
    jitsi = ctx.components.jitsi
    if jitsi.jvb.type == "NodePort":
        check_node_port(ctx)
    per_container = container_env(ctx)
    data = config_data(ctx, per_container)
    images = {WEB: jitsi.web_image, PROSODY: jitsi.prosody_image, JICOFO: jitsi.jicofo_image, JVB: jitsi.jvb_image}
    host = ctx.host("meet")
    values = dict(
        ctx=ctx,
        ns=ctx.namespace,
        jitsi=jitsi,
        config_name=CONFIG_NAME,
        config_data=data,
        config_labels=ctx.labels(COMPONENT),
        images=images,
        labels={p: ctx.labels(COMPONENT, p, image_version(i)) for p, i in images.items()},
        media_labels=ctx.labels(COMPONENT, JVB_MEDIA, image_version(jitsi.jvb_image)),
        selector={p: ctx.selector(COMPONENT, p) for p in images},
        env=per_container,
        volumes={p: volumes_for(p) for p in images},
        pod_security=pod_security(UID),
        container_security=container_security(read_only_root=True, user=UID),
        affinity={
            WEB: web_affinity(ctx),
            PROSODY: ctx.region_affinity(),
            JICOFO: ctx.region_affinity(),
            JVB: jvb_affinity(ctx),
        },
        resources=jitsi.resources.model_dump(mode="json"),
        jvb_resources=jitsi.jvb_resources.model_dump(mode="json"),
        names={"web": WEB, "prosody": PROSODY, "jicofo": JICOFO, "jvb": JVB, "media": JVB_MEDIA},
        web_port=WEB_PORT,
        prosody_ports=PROSODY_PORTS,
        jicofo_port=JICOFO_PORT,
        jvb_http_port=JVB_HTTP_PORT,
        media_port=media_port(ctx),
        host=host,
        tls_secret=tls_secret_name(host),
        ingress_class=ctx.ingress_class,
        ingress_annotations=ingress_annotations(ctx, COMPONENT),
        service_monitor=ctx.service_monitors,
    )
    objs: list[dict[str, Any]] = []
    for template in ("config.yaml.j2", "web.yaml.j2", "prosody.yaml.j2", "jicofo.yaml.j2", "jvb.yaml.j2"):
        objs += render_template(HERE, template, **values)
    return objs
