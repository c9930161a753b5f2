"""kwokctl's configuration for one local cluster: which addresses the control plane listens on, and which nodes
kwok simulates (a real node joins the same cluster and must be left to its kubelet)."""

from __future__ import annotations

from pathlib import Path

KUBERNETES_SERVICE_IP = "10.96.0.1"  # the first address of service-cluster-ip-range 10.96.0.0/16


def kwokctl_config(cluster_dir: Path, advertise: str | None = None) -> str:
    """Listen on loopback only; keep API priority and fairness on (the operator must handle 429s).
    For a real node beside the simulated ones: kwok manages only the nodes annotated as fake; the API server
    reaches kubelets by their InternalIP and presents the admin certificate to them (logs, exec).

    ``advertise`` (a cluster with the real node): pods reach the API server as in-cluster clients do, at the
    ``kubernetes`` Service (10.96.0.1:443, which kube-proxy forwards to the Endpoints the API server publishes):
    it listens on every address, advertises ``advertise`` (the machine's address, reachable from the pods'
    bridge) and serves a certificate whose SANs include the Service's address (kwokctl adds every address of the
    machine and kubeApiserverCertSANs to it; the other components keep listening on loopback)."""
    pki = cluster_dir / "pki"
    reachable = f"""\
  kubeApiserverCertSANs: ["{KUBERNETES_SERVICE_IP}", kubernetes, kubernetes.default, kubernetes.default.svc]
""" if advertise else ""
    bind = f"""\
  - {{key: bind-address, value: "0.0.0.0"}}
  - {{key: advertise-address, value: "{advertise}"}}
""" if advertise else ""
    return f"""\
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  bindAddress: 127.0.0.1
{reachable}componentsPatches:
- name: kube-apiserver
  extraArgs:
{bind}  - {{key: kubelet-preferred-address-types, value: "InternalIP,Hostname"}}
  - {{key: kubelet-client-certificate, value: "{pki / 'admin.crt'}"}}
  - {{key: kubelet-client-key, value: "{pki / 'admin.key'}"}}
- name: kwok-controller
  extraArgs:
  - {{key: manage-all-nodes, value: "false"}}
  - {{key: manage-nodes-with-annotation-selector, value: "kwok.x-k8s.io/node=fake"}}
"""
