"""``sovereign-suite``: run the operator, render and validate suites offline, print CRDs, drive the dev cluster.

Bad input prints one line per problem (``error: <field path>: <problem>``) on stderr and exits 1, never a traceback.
``validate`` also prints ``warning: <suite>: <field path>: <what>`` on stderr for what is valid but will not work
(a component's egress not declared: api/egress_checks.py); warnings do not change the exit code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import yaml

from .api.common import OPERATOR_NAMESPACE
from .api.validation import InputError, Problem


def _dump_all(objs: list[dict]) -> str:
    return "".join("---\n" + yaml.safe_dump(o, sort_keys=True, default_flow_style=False, width=120) for o in objs)


def _load(args: argparse.Namespace):
    from .api.loader import load_files

    files = list(args.file) + list(args.clouds or [])
    suites, clouds = load_files(files)
    if not suites:
        raise InputError([Problem(", ".join(files), "no SovereignSuite found")])
    return suites, clouds


def cmd_render(args: argparse.Namespace) -> int:
    from .render import render_suite, with_secrets
    from .secretgen import missing_keys

    suites, clouds = _load(args)
    adapters = None
    if args.served_adapters:
        from .components.llm.adapters import served_adapters_from

        text = Path(args.served_adapters).read_text(encoding="utf-8")
        adapters = served_adapters_from(yaml.safe_load(text), args.served_adapters)
    outputs: list[tuple[str, list[dict]]] = []
    problems: list[Problem] = []
    for suite in suites:
        try:
            result = render_suite(suite, clouds, frozenset(args.api_versions or ()),
                                  operator_namespace=args.operator_namespace, adapters=adapters)
        except InputError as err:
            problems += err.problems
            continue
        values = None
        if args.generate_secrets:
            values = {(s.namespace, s.name): missing_keys(s, None) for s in result.secrets}
        outputs.append((suite.name, with_secrets(result, values)))
    if problems:
        raise InputError(problems)
    if args.output_dir:
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, objs in outputs:
            (out / f"{name}.yaml").write_text(_dump_all(objs), encoding="utf-8")
            print(f"wrote {out / f'{name}.yaml'} ({len(objs)} objects)", file=sys.stderr)
    else:
        sys.stdout.write("".join(_dump_all(objs) for _, objs in outputs))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .api.egress_checks import missing_egress
    from .render import render_suite

    suites, clouds = _load(args)
    problems: list[Problem] = []
    for suite in suites:
        try:
            result = render_suite(suite, clouds, operator_namespace=args.operator_namespace)
        except InputError as err:
            problems += err.problems
            continue
        print(f"{suite.name}: valid ({len(suite.spec.tenants)} tenants, {len(result.manifests)} objects)")
        # valid, but a component would not reach what it needs (the operator reports the same in status.warnings)
        for warning in missing_egress(suite, clouds):
            print(f"warning: {suite.name}: {warning}", file=sys.stderr)
    if problems:
        raise InputError(problems)
    return 0


def cmd_crds(args: argparse.Namespace) -> int:
    from .api import crdgen

    if args.output_dir:
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name in sorted(crdgen.CRDS):
            (out / f"{name}.yaml").write_text(crdgen.crd_yaml(name), encoding="utf-8")
    else:
        sys.stdout.write(crdgen.all_crds_yaml())
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    from .devcluster import cli as devcli

    return devcli.main(args)


def cmd_cloud(args: argparse.Namespace) -> int:
    from .members import join

    return join.main(args)


def cmd_run(args: argparse.Namespace) -> int:
    from .reconcile import runner

    return runner.main(args)


def cmd_status(args: argparse.Namespace) -> int:
    from . import status

    return status.main(args)


_OPERATOR_NS_HELP = ("the operator's namespace, which a NationalCloud without spec.suiteNamespaces admits "
                     "(default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sovereign-suite", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("render", help="print every manifest of a suite (multi-document YAML, deterministic)")
    r.add_argument("-f", "--file", action="append", required=True, help="suite file (repeatable)")
    r.add_argument("--clouds", action="append", help="NationalCloud file (repeatable)")
    r.add_argument("-o", "--output-dir", help="write <suite>.yaml into this folder instead of stdout")
    r.add_argument("--generate-secrets", action="store_true", help="real random values instead of placeholders")
    r.add_argument("-a", "--api-versions", action="append",
                   help="an optional API the target cluster serves, e.g. monitoring.coreos.com/v1 (repeatable)")
    r.add_argument("--operator-namespace", default=OPERATOR_NAMESPACE, help=_OPERATOR_NS_HELP)
    r.add_argument("--served-adapters", metavar="FILE",
                   help="LoRA adapters to serve, {<country>: [{name, baseModel, uri, rank, consumers}]} (YAML): what "
                        "the FineTune controller gives the operator (docs/llm-finetuning.md)")
    r.set_defaults(func=cmd_render)

    v = sub.add_parser("validate", help="check a suite and its clouds without a cluster")
    v.add_argument("-f", "--file", action="append", required=True)
    v.add_argument("--clouds", action="append")
    v.add_argument("--operator-namespace", default=OPERATOR_NAMESPACE, help=_OPERATOR_NS_HELP)
    v.set_defaults(func=cmd_validate)

    c = sub.add_parser("crds", help="print the CustomResourceDefinitions generated from the models")
    c.add_argument("-o", "--output-dir", help="write one file per CRD into this folder")
    c.set_defaults(func=cmd_crds)

    cl = sub.add_parser("cluster", help="local control plane with simulated national clouds")
    cl.add_argument("action", choices=["up", "down", "status"])
    cl.add_argument("--name", default="sovereign-suite", help="cluster name (several can run side by side)")
    cl.add_argument("--countries", default="", help="up: simulate only these countries' clouds, e.g. FR,DE "
                    "(default: FR, DE, LU, SE)")
    cl.add_argument("--real-node", action="store_true",
                    help="up: also start a real node (kubelet, containerd, kube-proxy, kube-router) on this machine, "
                    "in region local-real; one per machine (docs/development.md)")
    cl.set_defaults(func=cmd_cluster)
    cj = sub.add_parser("cloud", help="join a member cluster to the hub for a NationalCloud, or leave")
    cj.add_argument("action", choices=["join", "leave"])
    cj.add_argument("cloud", help="the NationalCloud's name on the hub")
    cj.add_argument("--member-kubeconfig", required=True, help="admin kubeconfig of the member cluster (join: "
                    "creates the operator's ServiceAccount, role and admission policy there; leave: removes them)")
    cj.add_argument("--hub-kubeconfig", default=None, help="kubeconfig of the hub (default: $KUBECONFIG)")
    cj.add_argument("--secret-namespace", default=OPERATOR_NAMESPACE,
                    help="hub namespace of the kubeconfig Secret: the operator's member-secrets namespace (default: "
                    "%(default)s)")
    cj.add_argument("--allow-privileged-tenants", action="store_true",
                    help="join: let the hub create tenant namespaces that enforce Pod Security privileged (Jitsi's "
                    "JVB on host ports); by default the member refuses any tenant namespace below restricted")
    cj.set_defaults(func=cmd_cloud)

    run = sub.add_parser("run", help="run the operator (Kopf) in the foreground")
    run.add_argument("-n", "--namespace", action="append", help="watch only these namespaces (repeatable)")
    run.add_argument("--local-cloud", action="append", metavar="CLOUD",
                     help="pull mode: this cluster is these NationalClouds (repeatable); tenants on any other cloud "
                     "are another operator's and reported as remote (docs/multi-cluster.md)")
    run.add_argument("--operator-namespace", default=None,
                     help="the operator's own namespace, which a NationalCloud without suiteNamespaces admits "
                     "(default: $SOVEREIGN_SUITE_OPERATOR_NAMESPACE, else the pod's, else " + OPERATOR_NAMESPACE + ")")
    run.add_argument("--member-secrets-namespace", default=None,
                     help="push mode: the only namespace member kubeconfig Secrets are read from (default: "
                     "$SOVEREIGN_SUITE_MEMBER_SECRETS_NAMESPACE, else the operator's namespace)")
    run.add_argument("--leader-elect", action="store_true",
                     help="run several replicas: only the one holding a coordination.k8s.io Lease works and writes, "
                     "the others wait with warm caches (docs/install.md, High availability)")
    run.add_argument("--leader-elect-resource-name", default="sovereign-suite-operator", metavar="NAME",
                     help="the Lease's name (default: %(default)s)")
    run.add_argument("--leader-elect-resource-namespace", default=None, metavar="NS",
                     help="the Lease's namespace (default: the operator's namespace)")
    run.add_argument("--leader-elect-lease-duration", type=float, default=10.0, metavar="SECONDS",
                     help="how long a standby waits, from the last renewal it saw, before taking the Lease "
                     "(default: %(default)s)")
    run.add_argument("--leader-elect-renew-deadline", type=float, default=6.0, metavar="SECONDS",
                     help="the leader stops all work when it could not renew for this long; less than the lease "
                     "duration (default: %(default)s)")
    run.add_argument("--leader-elect-retry-period", type=float, default=1.0, metavar="SECONDS",
                     help="between two renewals, or two attempts of a standby (default: %(default)s)")
    run.add_argument("--shards", type=int, default=0, metavar="N",
                     help="run several replicas that split the suites: N shards, each written only by the replica "
                     "holding its Lease (<resource-name>-shard-<i>), rebalanced as replicas come and go; uses the "
                     "--leader-elect-resource-* and timing flags; not with --leader-elect (docs/architecture.md, "
                     "Sharding; default: 0, off)")
    run.add_argument("--metrics-port", type=int, default=9090)
    run.add_argument("--liveness-port", type=int, default=8080)
    run.add_argument("--verbose", action="store_true")
    run.set_defaults(func=cmd_run)

    st = sub.add_parser("status", help="country x component readiness of suites")
    st.add_argument("-n", "--namespace")
    st.add_argument("name", nargs="?")
    st.set_defaults(func=cmd_status)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as err:
        for problem in err.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
