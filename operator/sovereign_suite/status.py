"""``sovereign-suite status [-n NS] [NAME]``: a country x component table of ready/desired replicas, read from
the suites' status (what the operator observed). Coloured on a terminal, plain when piped."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from .api.models import COMPONENTS

GREEN, RED, YELLOW, RESET = "\033[32m", "\033[31m", "\033[33m", "\033[0m"


def table(suite: dict[str, Any], colour: bool) -> str:
    meta, status = suite["metadata"], suite.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
    head = f"{meta['namespace']}/{meta['name']}: "
    if ready is None:
        head += "not reconciled yet"
    else:
        head += f"Ready={ready['status']} ({ready['reason']})"
    rows = [["COUNTRY", *[c.upper() for c in COMPONENTS]]]
    cells_colour: list[list[str]] = [[""] * (len(COMPONENTS) + 1)]
    for tenant in status.get("tenants") or []:
        comps = {c["name"]: c for c in tenant.get("components") or []}
        row, colours = [tenant["country"]], [""]
        for name in COMPONENTS:
            c = comps.get(name)
            if c is None:
                row.append("-")
                colours.append("")
            else:
                row.append(f"{c['readyReplicas']}/{c['desiredReplicas']}" + ("" if c["ready"] else f" {c['reason']}"))
                colours.append(GREEN if c["ready"] else (RED if c["reason"] not in ("Progressing", "") else YELLOW))
        rows.append(row)
        cells_colour.append(colours)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [head]
    for row, colours in zip(rows, cells_colour):
        cells = []
        for text, width, col in zip(row, widths, colours):
            cell = text.ljust(width)
            cells.append(f"{col}{cell}{RESET}" if colour and col else cell)
        lines.append("  ".join(cells).rstrip())
    if ready is not None and ready["status"] != "True" and ready.get("message"):
        lines.append(f"  {ready['message'][:500]}")
    for w in status.get("warnings") or []:  # valid but will not work (status.warnings): never part of Ready
        text = f"warning: {w.get('field', '')}: {w.get('message', '')}"[:500]
        lines.append(f"{YELLOW}{text}{RESET}" if colour else text)
    return "\n".join(lines)


def main(args, out: TextIO = sys.stdout) -> int:
    from kubernetes import config

    from .reconcile.kube import ApiError, Kube

    try:
        kube = Kube(config.new_client_from_config())
    except config.ConfigException as err:
        print(f"error: no kubeconfig: {err}", file=sys.stderr)
        return 1
    try:
        if args.name:
            suite = kube.get("sovereignsuite.io/v1alpha1", "SovereignSuite", args.name, args.namespace or "default")
            suites = [suite] if suite else []
            if not suites:
                print(f"error: SovereignSuite {args.namespace or 'default'}/{args.name} not found", file=sys.stderr)
                return 1
        else:
            suites = kube.list("sovereignsuite.io/v1alpha1", "SovereignSuite", namespace=args.namespace)
    except ApiError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    colour = out.isatty()
    print("\n\n".join(table(s, colour) for s in sorted(suites, key=lambda s: (s["metadata"]["namespace"],
                                                                              s["metadata"]["name"]))), file=out)
    return 0
