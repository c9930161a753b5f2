"""The Synapse router: routes.yaml (from docs/workers.md at v1.163.2) compiles, sample paths go where Synapse's docs
say, and the rendered nginx config does the same in a real nginx (Debian's, installed by
hack/install-federation-tools.sh), with one small HTTP server per upstream standing in for the Synapse processes."""

from __future__ import annotations

import base64
import http.server
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from sovereign_suite.api.matrix_workers import PRESETS
from sovereign_suite.components.matrix import routing
from sovereign_suite.components.matrix.workloads import router_conf
from sovereign_suite.components.base import build_contexts

from ..helpers import load_example, suite_with
from ..processes import free_port as _free_port

LARGE = PRESETS["large"]
MONOLITH = PRESETS["monolith"]

# (path, query since, where docs/workers.md sends it with the large preset)
SAMPLES = [
    ("/_matrix/client/v3/sync", "s72594_4483", "sync"),  # "Sync requests"
    ("/_matrix/client/r0/sync", None, "initial_sync"),  # "Load balancing": no since = initial sync
    ("/_matrix/client/v3/events", None, "sync"),
    ("/_matrix/client/v3/initialSync", None, "initial_sync"),
    ("/_matrix/client/v3/rooms/!abc:fr.example/initialSync", None, "initial_sync"),
    ("/_matrix/federation/v1/send/1700000000000", None, "federation_inbound"),  # inbound transactions
    ("/_matrix/federation/v1/make_join/!abc:fr.example/@u:de.example", None, "federation_inbound"),
    ("/_matrix/federation/v2/send_join/!abc:fr.example/$ev", None, "federation_inbound"),
    ("/_matrix/key/v2/query", None, "federation_inbound"),
    ("/_matrix/media/v3/upload", None, "media_repository"),  # synapse.app.media_repository
    ("/_matrix/client/v1/media/download/fr.example/abc", None, "media_repository"),
    ("/_matrix/federation/v1/media/download/abc", None, "media_repository"),
    ("/_matrix/client/v3/rooms/!abc:fr.example/send/m.room.message/txn1", None, "client_reader"),  # event sending
    ("/_matrix/client/v3/createRoom", None, "client_reader"),
    ("/_matrix/client/v3/login", None, "client_reader"),  # password login ("Registration/login requests")
    ("/_matrix/client/v3/keys/query", None, "client_reader"),
    ("/_matrix/client/v3/user_directory/search", None, "user_directory"),
    ("/_matrix/client/v3/login/sso/redirect/oidc", None, "main"),  # "all SSO logins go to a single process"
    ("/_synapse/client/oidc/callback", None, "main"),
    ("/_synapse/client/pick_idp", None, "main"),
    ("/_matrix/client/v3/rooms/!abc:fr.example/typing/@u:fr.example", None, "main"),  # typing stream on main
    ("/_matrix/client/v3/rooms/!abc:fr.example/messages", None, "main"),  # needs per-room stickiness
    ("/_matrix/client/v3/sendToDevice/m.room_key/1", None, "main"),  # to_device stream on main
]


def test_every_regex_compiles_and_fits_nginx():
    assert routing.routes()
    for r in routing.routes():
        for p in r.paths:
            re.compile(p)
            assert routing.NGINX_SAFE.match(p), p


@pytest.mark.parametrize("path, since, expected", SAMPLES)
def test_sample_paths_route_where_the_docs_say(path, since, expected):
    assert routing.route(path, LARGE, since) == expected
    assert routing.route(path, MONOLITH, since) == "main"  # the monolith serves everything


EVENT_SENDING = [  # docs/workers.md, "Event sending requests"
    "/_matrix/client/v3/rooms/!abc:fr.example/send/m.room.message/txn1",
    "/_matrix/client/v3/rooms/!abc:fr.example/redact/$ev/txn2",
    "/_matrix/client/v3/rooms/!abc:fr.example/state/m.room.topic/",
    "/_matrix/client/v3/rooms/!abc:fr.example/invite",
    "/_matrix/client/v3/join/!abc:fr.example",
    "/_matrix/client/v3/profile/@u:fr.example/displayname",
]


def test_event_sending_goes_where_the_events_are_written():
    # with event persisters a client reader creates the event and hands it to the room's persister; without any,
    # main writes every event, so it creates them too instead of receiving each from a client reader over HTTP
    main_writes = {**LARGE, "event_persister": 0}
    for path in EVENT_SENDING:
        assert routing.route(path, LARGE) == "client_reader", path
        assert routing.route(path, main_writes) == "main", path
    # the client readers keep their other paths
    assert routing.route("/_matrix/client/v3/keys/query", main_writes) == "client_reader"
    assert routing.route("/_matrix/client/v3/rooms/!abc:fr.example/state", main_writes) == "client_reader"
    assert routing.route("/_matrix/client/v3/createRoom", main_writes) == "client_reader"


def test_types_without_replicas_fall_back():
    small = PRESETS["small"]  # no initial-sync pool
    assert routing.route("/_matrix/client/v3/sync", small, None) == "sync"
    assert routing.route("/_matrix/client/v3/initialSync", small) == "sync"  # initial_sync's fallback
    no_media = {**LARGE, "media_repository": 0, "user_directory": 0}
    assert routing.route("/_matrix/media/v3/upload", no_media) == "main"  # main keeps enable_media_repo
    assert routing.route("/_matrix/client/v3/user_directory/search", no_media) == "client_reader"


# ---- the real nginx ---------------------------------------------------------------------------------------


class _Backend(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps a connection open when its client asks to, as Synapse's Twisted does

    def do_GET(self):  # noqa: N802 - http.server's name
        body = self.server.name.encode()  # type: ignore[attr-defined]
        # which connection (the router's source port) carried the request, and what it said of the connection
        self.server.seen.append((self.client_address[1], self.headers.get("Connection")))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def nginx_router(nginx_router_lab):
    return nginx_router_lab[0]


@pytest.fixture
def nginx_router_lab(request, tmp_path):
    """The rendered router in a real nginx, each upstream server a stand-in backend: (base URL, {host: backend}).
    The workers: the large preset, or the test's (``indirect`` parametrization)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx is missing: run hack/install-federation-tools.sh")
    workers = getattr(request, "param", {"size": "large"})
    suite = suite_with("two-countries", {"components": {"matrix": {"workers": workers}}})
    ctx = build_contexts(suite, load_example("two-countries")[1])[0]
    conf = router_conf(ctx, str(Path(routing.__file__).parent), 8008, "100m", 300)
    servers, backends = {}, []
    for host in sorted(set(re.findall(r'server "([^"]+):8008";', conf))):
        port = _free_port()
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Backend)
        srv.name, srv.seen = host, []  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        backends.append(srv)
        servers[host] = port
    # only the addresses change: each Service name becomes a local backend that answers with its name
    assert servers, "no upstream server found in the rendered config"
    conf = re.sub(r'server "([^"]+):8008";', lambda m: f"server 127.0.0.1:{servers[m.group(1)]};", conf)
    listen = _free_port()
    conf = conf.replace("listen 8008;", f"listen 127.0.0.1:{listen};").replace("listen [::]:8008;", "")
    (tmp_path / "default.conf").write_text(conf)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\ndaemon off;\nevents {{}}\n"
        f"http {{\n access_log off;\n client_body_temp_path {tmp_path}/body;\n proxy_temp_path {tmp_path}/proxy;\n"
        f" include {tmp_path}/default.conf;\n}}\n")
    check = subprocess.run([nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([nginx, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)])
    base = f"http://127.0.0.1:{listen}"
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(base + "/router-health", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail((tmp_path / "error.log").read_text())
            time.sleep(0.1)
    yield base, {srv.name: srv for srv in backends}  # type: ignore[attr-defined]
    proc.terminate()
    proc.wait(timeout=10)
    for srv in backends:
        srv.shutdown()


def _get(base: str, path: str, token: str | None = None) -> str:
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.read().decode()


def _type_of(host: str) -> str:
    if host == "synapse":
        return "main"
    name = host.removeprefix("synapse-").removesuffix("-http")
    return re.sub(r"-[0-9]+$", "", name).replace("-", "_")


def test_real_nginx_routes_the_samples_like_the_table(nginx_router):
    for path, since, expected in SAMPLES:
        query = f"?since={since}" if since else ""
        assert _type_of(_get(nginx_router, path + query)) == expected, path


@pytest.mark.parametrize("nginx_router_lab", [{"size": "large", "eventPersister": 0}], indirect=True)
def test_real_nginx_sends_events_to_main_while_main_writes_them(nginx_router_lab):
    base, _ = nginx_router_lab
    for path in EVENT_SENDING:
        assert _type_of(_get(base, path)) == "main", path
    assert _type_of(_get(base, "/_matrix/client/v3/keys/query")) == "client_reader"


def test_real_nginx_keeps_a_user_on_one_sync_process(nginx_router):
    # two devices (tokens) of each user: syt_<base64 localpart>_<random>_<crc>
    seen = {}
    # the hash ring depends on the upstream addresses (random ports here): with 40 users, the chance that all land
    # on one of the two processes is 2 x 2^-40
    users = [base64.b64encode(f"user{i}".encode()).decode().rstrip("=") for i in range(40)]
    for user in users:
        hosts = {_get(nginx_router, "/_matrix/client/v3/sync?since=s1", f"syt_{user}_{rnd}_0crc")
                 for rnd in ("AAAAAAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBBBBBB", "CCCCCCCCCCCCCCCCCCCC")}
        assert len(hosts) == 1, (user, hosts)  # every device of a user on the same process
        seen[user] = hosts.pop()
    assert set(seen.values()) == {"synapse-sync-0", "synapse-sync-1"}  # and the users spread over the pool


def test_real_nginx_reuses_its_connections_to_synapse(nginx_router_lab):
    base, backends = nginx_router_lab
    for _ in range(5):  # the admin API: main's in every topology (`location /`)
        assert _get(base, "/_synapse/admin/v1/server_version") == "synapse"
    seen = backends["synapse"].seen
    assert len(seen) == 5
    # one connection for the five requests, none told to close: the upstream's keepalive and the cleared header
    assert len({port for port, _ in seen}) == 1, seen
    assert all((conn or "").lower() != "close" for _, conn in seen), seen
