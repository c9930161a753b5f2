"""The path table of the Synapse router (routes.yaml, from docs/workers.md at the pinned Synapse tag) and what
it resolves to for a topology: per route the process type that serves it (its own type when it has replicas, else
its ``fallback`` type, else main; a ``to_events_writer`` route goes to main while main writes every room's
events). ``route`` answers like the rendered nginx config does (first regex that matches, in the file's order);
tests/components/test_matrix_routing.py checks both against the docs' samples."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from .workers import BY_KEY

ROUTES_FILE = Path(__file__).with_name("routes.yaml")
MAIN = "main"
# A regex goes into nginx's config inside double quotes: no quote, backslash, brace, semicolon or blank.
NGINX_SAFE = re.compile(r'^\^/[^"\\{};\s]+$')


@dataclass(frozen=True)
class Route:
    type: str
    paths: tuple[str, ...]
    sticky: bool = False
    initial_sync_without_since: bool = False
    fallback: str = MAIN
    to_events_writer: bool = False  # main when no event persister runs: the event is created where it is written


@lru_cache(maxsize=1)
def routes() -> tuple[Route, ...]:
    data = yaml.safe_load(ROUTES_FILE.read_text())
    out = []
    for r in data["routes"]:
        route = Route(r["type"], tuple(r["paths"]), bool(r.get("sticky")), bool(r.get("initial_sync_without_since")),
                      r.get("fallback", MAIN), bool(r.get("to_events_writer")))
        for t in (route.type, route.fallback):
            if t != MAIN and t not in BY_KEY:
                raise ValueError(f"routes.yaml: unknown process type {t!r}")
        for p in route.paths:
            if not NGINX_SAFE.match(p):
                raise ValueError(f"routes.yaml: {p!r} cannot be written into nginx's config as it is")
        out.append(route)
    return tuple(out)


def serving(route_type: str, topology: dict[str, int]) -> str:
    """The type that serves a route's paths: its own when it has replicas, else along its fallbacks, else main."""
    seen = set()
    t = route_type
    while t != MAIN and topology.get(t, 0) == 0 and t not in seen:
        seen.add(t)
        t = next((r.fallback for r in routes() if r.type == t), MAIN)
    return t if t == MAIN or topology.get(t, 0) > 0 else MAIN


def target(r: Route, topology: dict[str, int]) -> str:
    """The type that serves one route: event sending stays on main while main persists every room's events
    (``stream_writers.events`` is main when no event persister runs), else the route type's serving type."""
    if r.to_events_writer and topology.get("event_persister", 0) == 0:
        return MAIN
    return serving(r.type, topology)


def route(path: str, topology: dict[str, int], since: str | None = None) -> str:
    """Where a request goes: the serving type of the first route with a matching regex; /sync without ``since``
    goes to the initial-sync pool when it has replicas (docs/workers.md, "Load balancing")."""
    for r in routes():
        if any(re.search(p, path) for p in r.paths):
            if r.initial_sync_without_since and not since and topology.get("initial_sync", 0) > 0:
                return "initial_sync"
            return target(r, topology)
    return MAIN


def nginx_values(topology: dict[str, int]) -> dict[str, object]:
    """What templates/router-nginx.conf.j2 needs: upstreams (sticky pools hash over their processes' own
    Services; the others through their type's Service), the since-map for the sync route, the locations."""
    used = {target(r, topology) for r in routes()}
    if any(r.initial_sync_without_since for r in routes()) and topology.get("initial_sync", 0) > 0:
        used.add("initial_sync")
    used.add(MAIN)
    sticky = {r.type for r in routes() if r.sticky}
    upstreams = []
    for t in sorted(used):
        if t == MAIN:
            upstreams.append({"name": "synapse_main", "sticky": False, "servers": ["synapse"]})
        elif t in sticky:
            kind = BY_KEY[t]
            upstreams.append({"name": f"synapse_{t}", "sticky": True,
                              "servers": [kind.instance(i) for i in range(topology[t])]})
        else:
            upstreams.append({"name": f"synapse_{t}", "sticky": False, "servers": [f"{BY_KEY[t].statefulset}-http"]})
    sync_pool_map = None
    locations = []
    for r in routes():
        upstream = f"synapse_{target(r, topology)}"
        since_map = r.initial_sync_without_since and topology.get("initial_sync", 0) > 0
        if since_map:
            sync_pool_map = (upstream, "synapse_initial_sync")
        # "$" cannot go through the nginx filter (it refuses variables): "\z", the end of the subject, instead
        locations += [{"regex": p.replace("$", "\\z"), "upstream": upstream, "since_map": since_map}
                      for p in r.paths]
    return {"upstreams": upstreams, "sync_pool_map": sync_pool_map, "locations": locations}
