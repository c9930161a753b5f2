"""Configuration files of the real node's programs (pure functions of the node's layout: tested offline)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

NODE_NAME = "real-node"
REGION = "local-real"
ZONE = "local-real-a"
COUNTRY_LABEL = "sovereignsuite.io/real-node"
POD_CIDR = "10.245.0.0/24"  # apart from the simulated nodes' 10.244.N.0/24 and the Services' 10.96.0.0/16
BRIDGE = "ssrn0"
CNI_NETWORK = "sovereign-suite-realnode"
CNI_BIN = "/usr/lib/cni"
SANDBOX_IMAGE = "registry.k8s.io/pause:3.10"
DNS_IP = "10.96.0.10"  # the Service kube-dns (dns.py), in the cluster's service range 10.96.0.0/16
# Ports are fixed (kubelet's and kube-proxy's usual ones): hence one real node per machine.
KUBELET_PORT, KUBELET_HEALTHZ = 10250, 10248
PROXY_METRICS, PROXY_HEALTHZ = 10249, 10256
ROUTER_HEALTH, ROUTER_METRICS = 20244, 20245
PORTS = (KUBELET_PORT, KUBELET_HEALTHZ, PROXY_METRICS, PROXY_HEALTHZ, ROUTER_HEALTH, ROUTER_METRICS)


@dataclass(frozen=True)
class Layout:
    """Where the node keeps its files. ``run``: sockets and containerd's state (tmpfs); ``base``: everything else
    (containerd's content store and snapshots, kubelet's root, CNI's leases, configs, certificates); both are
    removed when the node stops."""

    run: Path = Path("/run/sovereign-suite-realnode")
    base: Path = Path("/var/lib/sovereign-suite-realnode")

    @property
    def state_file(self) -> Path:
        return self.run / "node.json"

    @property
    def containerd_sock(self) -> Path:
        return self.run / "containerd.sock"

    @property
    def conf(self) -> Path:
        return self.base / "conf"

    @property
    def pki(self) -> Path:
        return self.base / "pki"

    @property
    def kubelet_root(self) -> Path:
        return self.base / "kubelet"

    @property
    def cni_conf_dir(self) -> Path:
        return self.base / "cni" / "net.d"

    @property
    def cni_data(self) -> Path:
        return self.base / "cni" / "networks"


def node_labels() -> dict[str, str]:
    """Labels like the simulated nodes' (seed.node_objects), so a NationalCloud names the real node's region.
    kubelet may set these on its own Node (NodeRestriction allows kubernetes.io/hostname and topology.*)."""
    return {
        "topology.kubernetes.io/region": REGION,
        "topology.kubernetes.io/zone": ZONE,
        "type": "real",
        COUNTRY_LABEL: "true",
    }


def containerd_config(layout: Layout, shim_dir: Path) -> str:
    """containerd 2.x (config version 3). ``restrict_oom_score_adj``: the machine withholds CAP_SYS_RESOURCE, so
    runc may not lower oom_score_adj below the current value (docs/development.md, "Real node")."""
    return f"""\
version = 3
root = "{layout.base / 'containerd'}"
state = "{layout.run / 'containerd'}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.erofs"]

[grpc]
  address = "{layout.containerd_sock}"

[ttrpc]
  address = "{layout.run / 'containerd.sock.ttrpc'}"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      runtime_path = "{shim_dir / 'containerd-shim-runc-v2'}"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{CNI_BIN}"]
    conf_dir = "{layout.cni_conf_dir}"
    max_conf_num = 1

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{SANDBOX_IMAGE}"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""


def cni_config(layout: Layout) -> str:
    return json.dumps({
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": str(layout.cni_data),
                      "ranges": [[{"subnet": POD_CIDR}]], "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=2)


def kubelet_config(layout: Layout, ca_file: Path) -> str:
    return f"""\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# the machine's cgroups are v1 (hybrid): kubelet >= 1.35 refuses to start on v1 unless told
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://{layout.containerd_sock}
port: {KUBELET_PORT}
healthzBindAddress: 127.0.0.1
healthzPort: {KUBELET_HEALTHZ}
readOnlyPort: 0
# the API server presents the cluster's admin certificate (--kubelet-client-certificate) for logs and exec
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: "{ca_file}"}}
authorization: {{mode: Webhook}}
clusterDomain: cluster.local
clusterDNS: [{DNS_IP}]
resolvConf: /etc/resolv.conf
staticPodPath: ""
maxPods: 60
serializeImagePulls: false
# the host's disk is shared with other work: evict only when really short
evictionHard: {{memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 2%}}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
failSwapOn: false
rotateCertificates: false
serverTLSBootstrap: false
registerNode: true
nodeStatusReportFrequency: 10s
"""


def kube_proxy_config(kubeconfig: Path) -> str:
    """iptables mode. conntrack: 0 leaves the host's conntrack sysctls alone."""
    return f"""\
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {{kubeconfig: "{kubeconfig}"}}
mode: iptables
clusterCIDR: {POD_CIDR}
hostnameOverride: {NODE_NAME}
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:{PROXY_HEALTHZ}
metricsBindAddress: 127.0.0.1:{PROXY_METRICS}
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
"""


def kubeconfig(server: str, ca: Path, cert: Path, key: Path, user: str) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }, indent=2)


def dns_objects(image: str, server: str, pki: Path) -> list[dict]:
    """The Service kube-dns and its two pods on the real node (dns.py): the resolver on the host network (the
    API server listens on loopback), and the relay on the pod network with label k8s-app=kube-dns (the peer the
    tenants' egress policies allow; kube-router leaves host-network pods out of policy peers)."""
    labels = {"k8s-app": "kube-dns"}
    resources = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}

    def pod(name: str, pod_labels: dict, args: list[str], host_network: bool, volumes: list) -> dict:
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "kube-system", "labels": pod_labels},
            "spec": {
                "nodeName": NODE_NAME, "hostNetwork": host_network, "dnsPolicy": "Default",
                "priorityClassName": "system-node-critical",
                # python3 runs as PID 1 without a SIGTERM handler, so the kernel drops SIGTERM: the eviction of
                # `cluster down` would wait the default 30 s grace for nothing (it holds no state)
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "dns", "image": image, "imagePullPolicy": "Never", "args": args,
                    "env": [{"name": "NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}],
                    "volumeMounts": [{"name": v["name"], "mountPath": "/pki", "readOnly": True} for v in volumes],
                    "resources": resources,
                }],
                "volumes": volumes,
            },
        }

    return [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
         "spec": {"clusterIP": DNS_IP, "selector": labels, "ports": [
             {"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}},
        pod(f"kube-dns-resolver-{NODE_NAME}", {"app": "kube-dns-resolver"},
            ["--listen", "$(NODE_IP)", "--server", server, "--ca", "/pki/ca.crt", "--cert", "/pki/admin.crt",
             "--key", "/pki/admin.key"], True, [{"name": "pki", "hostPath": {"path": str(pki), "type": "Directory"}}]),
        pod(f"kube-dns-{NODE_NAME}", labels, ["--listen", "0.0.0.0", "--upstream", "$(NODE_IP)"], False, []),
    ]
