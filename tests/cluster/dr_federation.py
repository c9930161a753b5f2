"""A second, real homeserver asking the restored French server for its key over federation (the disaster-recovery
test, test_real_node_dr.py): the check the German tenant's Synapse makes before it accepts anything FR signed.

A pod on the real node (the Synapse v1.163.2 stand-in image) runs a throwaway Synapse, ``de.test``, with SQLite,
no trusted key server (``trusted_key_servers: []``: the only source of FR's key is FR itself), and a TLS front in
the same pod: FR's server name is mapped to 127.0.0.1 (``hostAliases``), where a small TLS proxy forwards to FR's
Synapse Service (plain HTTP on 8008, as an ingress controller would; there is none on the real node). The test
asks ``de.test``'s notary API for FR's key (POST /_matrix/key/v2/query, Server-Server API, "Querying keys through
another server"): Synapse fetches ``/_matrix/key/v2/server`` from FR over federation, checks that the response is
signed by the key it announces (synapse/crypto/keyring.py, ServerKeyFetcher.process_v2_response, v1.163.2), stores
it, and answers with FR's response countersigned by ``de.test``. Those two signatures, and the same key id and
public key as before the disaster, are what the test asserts.

The other direction, FR to ``de.test`` (the federated exchange of dr_exchange.py): ``de.test``'s name is the
Service ``de-fed``'s name in the cluster's DNS; the Service has no selector and its EndpointSlice points to a TCP
proxy of the test on the machine's address (``Route``), which forwards to a second TLS front in the pod, on the
pod's address, port 443, before this Synapse. FR's suite declares what it needs for that (``Route.suite_patch``).

Not proven here: FR's real certificate chain (``federation_verify_certificates: false``: the proxy's certificate is
self-signed; TLS at the country's ingress is not part of the restore), and the German tenant of the suite itself
(this homeserver is not rendered by the operator).
"""

from __future__ import annotations

import copy
import json
import secrets as _random
from dataclasses import dataclass, field

from sovereign_suite.api.image_pins import PINS
from sovereign_suite.devcluster.realnode import NODE_NAME
from sovereign_suite.devcluster.realnode.node import node_ip
from sovereign_suite.imageref import rewrite

from .conftest import wait_for
from .realnode_fixture import INGRESS_NS, REGISTRY, Real
from .tcp_proxy import BlackHoleProxy

SERVICE = "de-fed"
# the German homeserver's name: the Service's name in the cluster's DNS (devcluster/realnode/dns.py answers it with
# the ClusterIP), the one name FR's pod can resolve to it; called de.test in the prose
DE = f"{SERVICE}.{INGRESS_NS}.svc.cluster.local"
POD = "de-notary"

# Runs in the pod: a self-signed certificate for FR's name (cryptography, a Synapse dependency), the TLS proxy on
# 127.0.0.1:8448 (the federation port a server name without .well-known nor SRV resolves to: Server-Server API,
# "Resolving server names", step 5) to FR's Service, the homeserver's configuration and keys, then Synapse.
START = r'''
import asyncio, datetime, os, socket, ssl, struct, subprocess, sys, threading
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

fr_name, upstream, de_name = sys.argv[1], sys.argv[2], sys.argv[4]
home = "/tmp/de"
os.makedirs(home + "/media", exist_ok=True)
key = ec.generate_private_key(ec.SECP256R1())
subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fr_name)])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(fr_name), x509.DNSName(de_name)]), critical=False)
        .sign(key, hashes.SHA256()))
open(home + "/tls.crt", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(home + "/tls.key", "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
host, port = upstream.rsplit(":", 1)

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()

def forward(to_host, to_port):
    async def serve(reader, writer):
        up_reader, up_writer = await asyncio.open_connection(to_host, to_port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)
    return serve

async def proxy():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(home + "/tls.crt", home + "/tls.key")
    # outbound: FR's name (127.0.0.1 in /etc/hosts) on 8448 to FR's Service; inbound: the pod's port 443 (what
    # FR reaches through the Service de-fed) to this Synapse's plain listener
    out = await asyncio.start_server(forward(host, int(port)), "127.0.0.1", 8448, ssl=ctx)
    # on the pod's address only: 127.0.0.1:443 stays closed, so that this Synapse's well-known lookup for FR's
    # name (mapped to 127.0.0.1) is refused and it goes on to port 8448, as before, instead of reaching itself
    inbound = await asyncio.start_server(forward("127.0.0.1", 8008), os.environ["POD_IP"], 443, ssl=ctx)
    async with out, inbound:
        await asyncio.gather(out.serve_forever(), inbound.serve_forever())

def nxdomain():
    # the pod's only resolver (dnsConfig 127.0.0.1): NXDOMAIN for every name (RFC 1035 4.1.1: the query's id,
    # opcode, RD and question; QR, RA, RCODE 3). Synapse's SRV lookup for FR then fails at once, as for a name with
    # no SRV record, and it connects to FR's name on 8448, which /etc/hosts maps to this pod
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 53))
    while True:
        q, peer = s.recvfrom(4096)
        end = 12
        while end < len(q) and q[end]:
            end += q[end] + 1
        if len(q) < end + 5:
            continue
        flags = ((0x80 | (q[2] & 0x79)) << 8) | 0x83
        s.sendto(q[:2] + struct.pack(">HHHHH", flags, 1, 0, 0, 0) + q[12:end + 5], peer)

threading.Thread(target=nxdomain, daemon=True).start()
threading.Thread(target=lambda: asyncio.run(proxy()), daemon=True).start()
open(home + "/homeserver.yaml", "w").write(sys.argv[3])
config = ["--config-path", home + "/homeserver.yaml"]
subprocess.run([sys.executable, "-m", "synapse.app.homeserver", *config, "--generate-keys"], check=True)
sys.exit(subprocess.run([sys.executable, "-m", "synapse.app.homeserver", *config]).returncode)
'''


def homeserver_yaml(registration_secret: str) -> str:
    """``de.test``'s configuration (Synapse v1.163.2's option names, docs/usage/configuration/config_documentation.md):
    SQLite, one plain listener on loopback with the client and federation resources (the key API with them), no
    trusted key server, the proxy's self-signed certificate accepted, loopback allowed as a federation destination
    (the default ``ip_range_blacklist`` refuses 127.0.0.0/8: synapse/config/server.py DEFAULT_IP_RANGE_BLOCKLIST,
    ``ip_range_whitelist``), ``serve_server_wellknown`` (synapse/rest/well_known.py: ``{"m.server":
    "<server_name>:443"}``, on the client resource: synapse/app/homeserver.py) so that FR finds it on 443, and a
    registration secret for the test's German user (the shared-secret admin API)."""
    return json.dumps({
        "server_name": DE, "pid_file": "/tmp/de/homeserver.pid", "report_stats": False,
        "listeners": [{"port": 8008, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                       "x_forwarded": False, "resources": [{"names": ["client", "federation"], "compress": False}]}],
        "database": {"name": "sqlite3", "args": {"database": "/tmp/de/homeserver.db"}},
        "media_store_path": "/tmp/de/media", "signing_key_path": "/tmp/de/signing.key",
        "trusted_key_servers": [], "suppress_key_server_warning": True,
        "federation_verify_certificates": False, "ip_range_whitelist": ["127.0.0.1"],
        "serve_server_wellknown": True, "registration_shared_secret": registration_secret,
    })  # JSON is YAML


@dataclass
class Route:
    """How FR's Synapse reaches ``de.test``: the Service's ClusterIP (what FR resolves DE's name to), the host
    proxy (on the node's address, where the Service's endpoints point) and the secret to register DE's users."""

    cluster_ip: str
    proxy: BlackHoleProxy
    registration_secret: str = field(default_factory=lambda: _random.token_hex(16))

    @property
    def node_address(self) -> str:
        return self.proxy.listener.getsockname()[0]

    @property
    def port(self) -> int:
        return self.proxy.port

    def suite_patch(self) -> dict:
        """What FR's suite declares to federate with ``de.test`` (each key a setting a platform team would write
        for a German homeserver outside the suite): the name in ``federation.extraDomains`` (Synapse's
        ``federation_domain_whitelist``); egress to the address and port FR's connections go to after the
        Service's translation (the node's address: outside the cluster's pod and Service networks, which a declared
        range may not overlap, api/egress_checks.py); in ``extraConfig``, the ClusterIP allowed as a federation
        destination (``ip_range_whitelist``: the default blocklist refuses 10.0.0.0/8, synapse/config/server.py
        v1.163.2) and no certificate check for DE's name only (``federation_certificate_verification_whitelist``,
        synapse/config/tls.py and synapse/crypto/context_factory.py FederationPolicyForHTTPS.get_options, v1.163.2:
        DE's certificate is self-signed)."""
        return {
            "components": {"matrix": {
                "federation": {"extraDomains": [DE]},
                "extraConfig": {"ip_range_whitelist": [f"{self.cluster_ip}/32"],
                                "federation_certificate_verification_whitelist": [DE]}}},
            "network": {"egress": {"matrixFederation": [{"cidrs": [f"{self.node_address}/32"],
                                                         "ports": [{"port": self.port}]}]}},
        }


def merge(into: dict, patch: dict) -> None:
    """``patch`` merged into ``into`` (nested dicts merged, anything else replaced)."""
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            merge(into[k], v)
        else:
            into[k] = copy.deepcopy(v)


def prepare(r: Real) -> Route:
    """Before FR's suite is applied (its settings name the ClusterIP): the Service ``de-fed`` without a selector,
    its EndpointSlice to the test's proxy on the node's address (ports 443 for the well-known lookup and the
    delegated ``de.test:443``, 8448 for the fallback), the proxy (its target, the pod, set by ``start``)."""
    proxy = BlackHoleProxy("127.0.0.1", 9, listen=node_ip())
    r.kubectl("create", "namespace", INGRESS_NS, check=False)  # as client_pod does
    ports = [{"name": "https", "port": 443, "protocol": "TCP"}, {"name": "federation", "port": 8448, "protocol": "TCP"}]
    r.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE, "namespace": INGRESS_NS},
             "spec": {"ports": [{**p, "targetPort": proxy.port} for p in ports]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": SERVICE, "namespace": INGRESS_NS,
                          "labels": {"kubernetes.io/service-name": SERVICE}},
             "addressType": "IPv4", "endpoints": [{"addresses": [node_ip()]}],
             "ports": [{"name": p["name"], "port": proxy.port, "protocol": "TCP"} for p in ports]})
    cluster_ip = r.core.read_namespaced_service(SERVICE, INGRESS_NS).spec.cluster_ip
    return Route(cluster_ip, proxy)


def start(r: Real, fr_name: str, upstream: str, route: Route) -> str:
    """The pod, running; returns its name once ``de.test`` answers on its loopback listener. ``upstream``: FR's
    Synapse as address:port (its Service's ClusterIP: the pod resolves no name but FR's). The route's proxy then
    forwards to the pod's port 443."""
    r.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": POD, "namespace": INGRESS_NS,
                                                             "labels": {"app": POD}},
             "spec": {"nodeName": NODE_NAME, "restartPolicy": "Never",
                      "hostAliases": [{"ip": "127.0.0.1", "hostnames": [fr_name]}],
                      # its own resolver on port 53 as uid 991 (a "safe" sysctl: Kubernetes docs, "Using sysctls in
                      # a Kubernetes Cluster"; allowed by the restricted Pod Security level)
                      "dnsPolicy": "None", "dnsConfig": {"nameservers": ["127.0.0.1"]},
                      "securityContext": {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start",
                                                       "value": "53"}]},
                      "containers": [{
                          "name": "synapse", "image": rewrite(PINS["synapse"].ref, REGISTRY),
                          "imagePullPolicy": "Never",
                          "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                          "command": ["python3", "-c", START, fr_name, upstream,
                                      homeserver_yaml(route.registration_secret), DE],
                          "securityContext": {"runAsUser": 991, "runAsNonRoot": True,
                                              "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                              "seccompProfile": {"type": "RuntimeDefault"}}}]}})

    def answers():
        phase = r.kubectl("-n", INGRESS_NS, "get", "pod", POD, "-o", "jsonpath={.status.phase}")
        assert phase in ("Pending", "Running"), (phase, log(r))
        if phase != "Running":
            return False
        out = r.kubectl("-n", INGRESS_NS, "exec", POD, "--", "python3", "-c",
                        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8008/health', "
                        "timeout=3).read().decode())", check=False)
        return out.strip() == "OK"

    wait_for(answers, timeout=180, interval=2, what=f"{DE}'s Synapse answering in pod {POD}")
    route.proxy.upstream = (r.core.read_namespaced_pod(POD, INGRESS_NS).status.pod_ip, 443)
    return POD


def log(r: Real) -> str:
    return r.kubectl("-n", INGRESS_NS, "logs", POD, "--tail=40", check=False)[-4000:]


QUERY = """import json,sys,urllib.request
body=json.dumps({'server_keys': {sys.argv[1]: {sys.argv[2]: {'minimum_valid_until_ts': 0}}}}).encode()
req=urllib.request.Request('http://127.0.0.1:8008/_matrix/key/v2/query',data=body,method='POST',
    headers={'Content-Type':'application/json'})
print(urllib.request.urlopen(req,timeout=60).read().decode())
"""


def query_through_de(r: Real, fr_name: str, key_id: str) -> dict:
    """FR's key as ``de.test``'s notary returns it, fetched from FR over federation (nothing cached before)."""
    out = r.kubectl("-n", INGRESS_NS, "exec", POD, "--", "python3", "-c", QUERY, fr_name, key_id)
    (entry,) = json.loads(out)["server_keys"]
    return entry


def stop(r: Real) -> None:
    r.kubectl("-n", INGRESS_NS, "delete", "pod", POD, "--grace-period=0", "--force", "--ignore-not-found",
              check=False)


DE_KEY = """import urllib.request
print(urllib.request.urlopen('http://127.0.0.1:8008/_matrix/key/v2/server',timeout=10).read().decode())
"""


def de_keys(r: Real) -> dict[str, str]:
    """``de.test``'s own keys (key id -> public key), from its key API."""
    out = json.loads(r.kubectl("-n", INGRESS_NS, "exec", POD, "--", "python3", "-c", DE_KEY))
    return {k: v["key"] for k, v in out["verify_keys"].items()}
