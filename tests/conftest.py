"""pytest configuration: the cluster fixtures live in tests/cluster/conftest.py."""
