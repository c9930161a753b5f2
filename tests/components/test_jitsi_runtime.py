"""Jitsi facts that decide whether the pods run at all, and what they call out to (issue 14).

Each test names the upstream file it encodes: docker-jitsi-meet at tag stable-11146-1 (the pinned images),
jicofo's reference.conf, jitsi-contrib/jitsi-helm (templates/, main branch, chart v3.4.0).
"""

from __future__ import annotations

import pytest

from sovereign_suite.api.validation import InputError
from .test_jitsi import FR, container, contexts, env_of, find, jitsi_patch, render


def test_jicofo_rest_listens_on_the_pod_ip_for_its_tcp_probes() -> None:
    # jicofo reference.conf: rest { port = 8888, host = "127.0.0.1" }; docker-jitsi-meet
    # jicofo/rootfs/defaults/jicofo.conf (stable-11146-1) writes rest.host = "0.0.0.0" only when
    # JICOFO_ENABLE_REST is true; jitsi-helm templates/jicofo/configmap.yaml sets JICOFO_ENABLE_REST: "true".
    jicofo = container(find(render(contexts()[FR]), "Deployment", "jitsi-jicofo"))
    assert env_of(jicofo)["JICOFO_ENABLE_REST"] == "true"
    assert jicofo["livenessProbe"]["tcpSocket"] == {"port": "http"}


def test_web_mounts_nothing_over_the_nginx_symlink() -> None:
    # docker-jitsi-meet web/Dockerfile (stable-11146-1): `rm -rf /var/lib/nginx && ln -s /run/web/tmp
    # /var/lib/nginx`; a mount over that symlink is refused by runc. jitsi-helm templates/web/deployment.yaml
    # mounts only /run and /tmp.
    web = find(render(contexts()[FR]), "Deployment", "jitsi-web")
    mounts = {m["mountPath"] for m in container(web)["volumeMounts"]}
    assert mounts == {"/run", "/tmp"}


def test_no_stun_server_by_default() -> None:
    # docker-jitsi-meet jvb/rootfs/defaults/jvb.conf (stable-11146-1): JVB_STUN_SERVERS | default
    # "meet-jit-si-turnrelay.jitsi.net:443" (an empty value falls back too); JVB_DISABLE_STUN=true writes
    # `stun { enabled = false }`. web/rootfs/defaults/settings-config.js sets p2p.stunServers only from
    # P2P_STUN_SERVERS, and config.p2p.enabled from ENABLE_P2P (default true). Unset stunServers make the browser
    # use lib-jitsi-meet's DEFAULT_STUN_SERVERS, stun:meet-jit-si-turnrelay.jitsi.net:443 (jitsi/lib-jitsi-meet
    # modules/xmpp/xmpp.ts: `this.options.p2p?.stunServers || DEFAULT_STUN_SERVERS`): peer-to-peer is off.
    objs = render(contexts()[FR])
    jvb = env_of(container(find(objs, "Deployment", "jitsi-jvb")))
    web = env_of(container(find(objs, "Deployment", "jitsi-web")))
    config = find(objs, "ConfigMap", "jitsi-env")["data"]
    assert jvb["JVB_DISABLE_STUN"] == "true"
    assert "JVB_STUN_SERVERS" not in jvb and "JVB_STUN_SERVERS" not in config
    assert "P2P_STUN_SERVERS" not in web and "P2P_STUN_SERVERS" not in config
    assert web["ENABLE_P2P"] == "false" and "ENABLE_P2P" not in config


def test_stun_servers_are_an_explicit_setting() -> None:
    objs = render(contexts(jitsi_patch(stunServers=["stun.example.eu:3478", "stun2.example.eu:443"]))[FR])
    jvb = env_of(container(find(objs, "Deployment", "jitsi-jvb")))
    web = env_of(container(find(objs, "Deployment", "jitsi-web")))
    assert jvb["JVB_DISABLE_STUN"] == "false"
    assert jvb["JVB_STUN_SERVERS"] == "stun.example.eu:3478,stun2.example.eu:443"
    assert web["P2P_STUN_SERVERS"] == "stun.example.eu:3478,stun2.example.eu:443"
    assert web["ENABLE_P2P"] == "true"  # the browsers use the suite's STUN servers for peer-to-peer calls


def test_stun_server_without_port_is_refused() -> None:
    with pytest.raises((InputError, ValueError)):
        contexts(jitsi_patch(stunServers=["stun.example.eu"]))


def test_no_third_party_service_is_switched_on() -> None:
    # docker-jitsi-meet web/rootfs/defaults/settings-config.js (stable-11146-1): JaaS (8x8.vc, jitsi.net
    # dial-in mapper), Amplitude, Google Analytics, Matomo, rtcstats and Let's Encrypt are only configured
    # when their variables are set; prosody's external_services (TURN) only with TURN_HOST/TURNS_HOST
    # (prosody/rootfs/defaults/prosody.cfg.lua). The operator sets none of them.
    objs = render(contexts()[FR])
    env: dict = dict(find(objs, "ConfigMap", "jitsi-env")["data"])
    for d in (o for o in objs if o["kind"] == "Deployment"):
        env.update(env_of(container(d)))
    assert env["ENABLE_LETSENCRYPT"] == "0"
    for name in ("ENABLE_JAAS_COMPONENTS", "JAAS_APP_ID", "AMPLITUDE_ID", "GOOGLE_ANALYTICS_ID", "MATOMO_ENDPOINT",
                 "ANALYTICS_SCRIPT_URLS", "RTCSTATS_ENABLED", "TURN_HOST", "TURNS_HOST", "STUN_HOST",
                 "BRANDING_DATA_URL", "DROPBOX_APPKEY", "GOOGLE_API_APP_CLIENT_ID"):
        assert name not in env, name
