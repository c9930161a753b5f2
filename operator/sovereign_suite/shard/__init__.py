"""Sharding: N operator replicas split the suites between them, each writing only the suites of the shards whose
Lease it holds (assign.py: which replica should hold which shard; fence.py: the per-suite write fence;
coordinator.py: the heartbeats, the shard Leases, the hand-offs). docs/architecture.md, "Sharding", says why.
"""
