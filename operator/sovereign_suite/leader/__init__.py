"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's semantics (timing.py, elector.py).

Only the replica holding the Lease runs the work queue and writes; the others keep their watch caches warm and
write nothing. docs/architecture.md, "Leader election", says why the timings are safe.
"""
