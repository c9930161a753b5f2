"""Local development cluster: a real control plane built from the Kubernetes Go modules, kwok nodes per
simulated national cloud. See docs/development.md."""

from .cluster import Cluster, ClusterError, bin_dir  # noqa: F401
