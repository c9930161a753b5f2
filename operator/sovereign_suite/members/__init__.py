"""Member clusters: a national cloud that is a Kubernetes cluster of its own (docs/multi-cluster.md)."""
