"""A cluster of its own with the machine's real node (tests/cluster/test_real_node*.py).

The real node needs root (it changes iptables, mounts, cgroups and sysctls) and is one per machine. When it
cannot start here the tests fail with the reason under CI=true and are skipped otherwise."""

from __future__ import annotations

import os

import pytest

from sovereign_suite.devcluster.cluster import Cluster, ClusterError


def need_real_node() -> None:
    reason = None
    if os.geteuid() != 0:
        reason = "the real node needs root"
    else:
        from sovereign_suite.devcluster.realnode.node import host_tools, node_bin_dir

        try:
            node_bin_dir(build=True)
            host_tools(install=True)
        except Exception as err:  # noqa: BLE001 - any build or install failure is reported the same way
            reason = f"real node unavailable: {err}"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def start(name: str, **kwargs) -> Cluster:
    c = Cluster(name)
    try:
        c.up(progress=lambda m: print(f"[cluster] {m}"), real_node=True, **kwargs)
    except (ClusterError, Exception):
        c.down()
        raise
    return c
