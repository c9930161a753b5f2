"""A real node beside the simulated ones (``sovereign-suite cluster up --real-node``): kubelet, kube-proxy,
containerd (runc, Debian's CNI plugins) and kube-router as a NetworkPolicy firewall, joined to the local control
plane, in a region of its own. See docs/development.md, "Real node"."""

from .configs import NODE_NAME, REGION, ZONE
from .node import RealNode

__all__ = ["NODE_NAME", "REGION", "ZONE", "RealNode"]
