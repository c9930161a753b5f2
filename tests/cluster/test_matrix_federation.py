"""Issue 16: Matrix federation between the suite's countries, with real Synapse servers and real PostgreSQL.

The operator converges a two-country suite (FR, DE; embedded PostgreSQL) on the local control plane. From what it
applied — not from a fresh render — each tenant gets, inside a network namespace of the test's own
(tests/cluster/matrix_lab.py): a PostgreSQL initialised from the database StatefulSet's environment and Secret,
a Synapse started with the Deployment's command, ConfigMap and generated Secret (only paths and listener
addresses remapped; the database file written by the rendered init script), and an nginx standing in for the
ingress controller (TLS from a local CA in place of cert-manager, routes from the applied Ingresses) and for the
Element Web pods (the rendered server block). Users on FR and DE talk in one room; a third homeserver outside
the allowlist is refused both ways. Then the suite is deleted with ``deletionPolicy: Retain``, created again,
and the servers restarted from what the operator re-applied: same signing key, same database, same room.

Needs root (network namespaces), Debian's postgresql and nginx (hack/install-federation-tools.sh, run by
``make test``) and the Synapse venv of tests/components/test_synapse_config.py. 25 to 32 s on 2 cores
(plus the session's cluster start, about 10 s).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import time
import urllib.parse
import uuid

import pytest

from ..components.test_synapse_config import synapse_python  # noqa: F401 - the fixture: Synapse's own venv
from .conftest import wait_for
from .matrix_lab import Applied, Lab
from .operator_fixture import SUITES, create_referenced_secrets, suite_doc, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROGUE = "rogue.example.org"  # a homeserver outside the suite's federation allowlist
PATCH = {"deletionPolicy": "Retain", "components": {"docs": {"enabled": False}, "jitsi": {"enabled": False}}}


def _need_tools() -> None:
    missing = [t for t in ("ip", "unshare", "setpriv", "openssl", "nginx") if not shutil.which(t)
               and not os.path.exists(f"/usr/sbin/{t}")]
    problem = "needs root for network namespaces" if os.geteuid() != 0 else (
        f"missing {missing}: run hack/install-federation-tools.sh" if missing else None)
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class Tenant:
    """A tenant's homeserver seen from a client: the ingress URL, and the admin API straight on Synapse's
    listener (it is not on the Ingress: `kubectl port-forward` in production)."""

    def __init__(self, lab: Lab, name: str, domain: str):
        self.lab, self.name, self.domain = lab, name, domain
        self.base = f"https://matrix.{domain}"

    def call(self, method: str, path: str, body=None, token=None, expect: int | None = 200):
        status, out = self.lab.request(method, self.base + path, body, token)
        for _ in range(5):  # rate limited (Synapse's rc_message): wait as the spec tells a client, then again
            if status != 429 or expect == 429 or not isinstance(out, dict):
                break
            time.sleep(min(10.0, (out.get("retry_after_ms") or 1000) / 1000 + 0.1))
            status, out = self.lab.request(method, self.base + path, body, token)
        if expect is not None:
            assert status == expect, f"{method} {self.base}{path}: {status} {out}"
        return status, out

    def register(self, user: str, shared_secret: str, admin: bool = False) -> tuple[str, str]:
        """Synapse's shared-secret registration (synapse/rest/admin/users.py, UserRegisterServlet, 1.163.2):
        HMAC-SHA1 over nonce, user, password and "admin" or "notadmin", NUL-separated."""
        url = f"http://{self.lab.ip(self.name, 'synapse')}:8008/_synapse/admin/v1/register"
        status, out = self.lab.request("GET", url)
        assert status == 200, out
        password = uuid.uuid4().hex
        mac = hmac.new(shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([out["nonce"].encode(), user.encode(), password.encode(),
                                  b"admin" if admin else b"notadmin"]))
        status, reg = self.lab.request("POST", url, {"nonce": out["nonce"], "username": user, "password": password,
                                                     "admin": admin, "mac": mac.hexdigest()})
        assert status == 200, reg
        return reg["user_id"], reg["access_token"]

    def send(self, token: str, room: str, text: str) -> None:
        self.call("PUT", f"/_matrix/client/v3/rooms/{q(room)}/send/m.room.message/{uuid.uuid4().hex}",
                  {"msgtype": "m.text", "body": text}, token)

    def messages(self, token: str, room: str) -> list[str]:
        status, out = self.call("GET", f"/_matrix/client/v3/rooms/{q(room)}/messages?dir=b&limit=100", token=token,
                                expect=None)
        return [e["content"].get("body") for e in out.get("chunk", []) if e["type"] == "m.room.message"] \
            if status == 200 else []

    def wait_message(self, token: str, room: str, text: str, timeout: float = 90) -> None:
        wait_for(lambda: text in self.messages(token, room), timeout=timeout, interval=1,
                 what=f"{text!r} read on {self.domain}")

    def server_key(self) -> dict:
        return self.call("GET", "/_matrix/key/v2/server")[1]


def signing_key_id(secret_file: str) -> str:
    """Synapse's signing key file: "ed25519 <version> <base64 seed>" (synapse/config/key.py, 1.163.2)."""
    algorithm, version, _seed = secret_file.split()
    return f"{algorithm}:{version}"


def start_tenant(lab: Lab, cc: str, app: Applied) -> None:
    lab.start_postgres(cc, app)
    lab.start_synapse(cc, app)


def test_fr_and_de_federate_and_nobody_else(operator, kube, core, namespace, synapse_python):  # noqa: F811
    _need_tools()
    started = time.monotonic()
    create_referenced_secrets(core, namespace)
    doc = suite_doc("two-countries", namespace, patch=PATCH)
    name = doc["metadata"]["name"]
    kube.create(doc)
    wait_ready(kube, doc, timeout=180)
    # 2. what the operator applied, per tenant
    apps = {cc: Applied.read(kube, f"{name}-{cc}") for cc in ("fr", "de")}
    fr_domain, de_domain = apps["fr"].domain, apps["de"].domain
    assert (fr_domain, de_domain) == ("fr.workplace.example.eu", "de.workplace.example.eu")
    assert apps["fr"].homeserver["federation_domain_whitelist"] == [de_domain]
    assert apps["de"].homeserver["federation_domain_whitelist"] == [fr_domain]

    lab = Lab(synapse_python)
    try:
        hosts = {cc: sorted(r["host"] for ing in app.ingresses for r in ing["spec"]["rules"])
                 for cc, app in apps.items()}
        hosts["rogue"] = [ROGUE, f"matrix.{ROGUE}"]
        lab.up(["fr", "de", "rogue"], hosts)
        # 3./4. PostgreSQL and Synapse per tenant, the ingress and Element Web; the rogue server
        for cc, app in apps.items():
            start_tenant(lab, cc, app)
        rogue_secret = lab.start_rogue_synapse("rogue", ROGUE)
        lab.start_nginx(apps, {"rogue": {ROGUE: f'{{"m.server": "matrix.{ROGUE}:443"}}'}})
        for cc in ("fr", "de", "rogue"):
            lab.wait_http(f"http://{lab.ip(cc, 'synapse')}:8008/health", proc=f"synapse-{cc}")
        fr, de, rogue = Tenant(lab, "fr", fr_domain), Tenant(lab, "de", de_domain), Tenant(lab, "rogue", ROGUE)
        print(f"[federation] servers up after {time.monotonic() - started:.0f} s")

        # Element Web and the well-known documents, over HTTPS through the ingress, as a browser would see them
        for cc, t in (("fr", fr), ("de", de)):
            status, config = lab.request("GET", f"https://chat.{t.domain}/config.json")
            assert status == 200, config
            assert config["default_server_config"]["m.homeserver"] == {"base_url": t.base, "server_name": t.domain}
            status, client = lab.request("GET", f"https://{t.domain}/.well-known/matrix/client")
            assert status == 200 and client == {"m.homeserver": {"base_url": t.base}}, client
            status, server = lab.request("GET", f"https://{t.domain}/.well-known/matrix/server")
            assert status == 200 and server == {"m.server": f"matrix.{t.domain}:443"}, server
            # the advertised base URL reaches the tenant's own homeserver, signing with the generated key
            key = lab.request("GET", client["m.homeserver"]["base_url"] + "/_matrix/key/v2/server")[1]
            assert key["server_name"] == t.domain
            assert list(key["verify_keys"]) == [signing_key_id(apps[cc].secrets["synapse-keys"]["signing.key"])]
            # the admin API is not on the Ingress
            assert lab.request("GET", f"{t.base}/_synapse/admin/v1/server_version")[0] == 404

        # 5. users, a room on FR, DE invited and joining, messages both ways
        alice, alice_token = fr.register("alice", apps["fr"].secrets["synapse-keys"]["registration_shared_secret"])
        bob, bob_token = de.register("bob", apps["de"].secrets["synapse-keys"]["registration_shared_secret"])
        carol, carol_token = rogue.register("carol", rogue_secret)
        room = fr.call("POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat", "name": "FR-DE"},
                       alice_token)[1]["room_id"]
        fr.call("POST", f"/_matrix/client/v3/rooms/{q(room)}/invite", {"user_id": bob}, alice_token)
        de.call("POST", f"/_matrix/client/v3/join/{q(room)}?server_name={fr_domain}", {}, bob_token)
        fr.send(alice_token, room, "Bonjour de Paris")
        de.wait_message(bob_token, room, "Bonjour de Paris")
        de.send(bob_token, room, "Hallo aus Berlin")
        fr.wait_message(alice_token, room, "Hallo aus Berlin")
        print(f"[federation] FR <-> DE messages after {time.monotonic() - started:.0f} s")

        # the rogue server is refused both ways. FR -> rogue: FR does not even send the invite.
        status, out = fr.call("POST", f"/_matrix/client/v3/rooms/{q(room)}/invite", {"user_id": carol},
                              alice_token, expect=None)
        assert status == 403 and f"Federation denied with {ROGUE}" in out.get("error", ""), (status, out)
        assert not [line for line in lab.access_log().splitlines() if line.startswith(f"matrix.{ROGUE} ")
                    and "/_matrix/federation/v1/invite" in line]
        # rogue -> FR: the rogue server (which federates with anybody) asks FR to join; FR's Synapse answers 403
        # (it did reach FR: the ingress logged the refused make_join). The room is made public first, so the
        # only reason left to refuse is the allowlist.
        fr.call("PUT", f"/_matrix/client/v3/rooms/{q(room)}/state/m.room.join_rules", {"join_rule": "public"},
                alice_token)
        status, out = rogue.call("POST", f"/_matrix/client/v3/join/{q(room)}?server_name={fr_domain}", {},
                                 carol_token, expect=None)
        assert status == 403, (status, out)
        refused = [line for line in lab.access_log().splitlines()
                   if line.startswith(f"matrix.{fr_domain} ") and "make_join" in line and q(carol) in line]
        assert refused and all(line.endswith(" 403") for line in refused), refused

        # 6. delete with deletionPolicy Retain, create again, restart from what the operator re-applied
        before = {cc: (app.secrets["synapse-keys"]["signing.key"], app.secrets["matrix-postgres"]["password"])
                  for cc, app in apps.items()}
        for cc in ("fr", "de"):
            lab.stop(f"synapse-{cc}")
            lab.stop_postgres(cc)
        kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
        wait_for(lambda: kube.get(*SUITES, name, namespace) is None, timeout=120, what="suite deleted")
        assert kube.get("apps/v1", "Deployment", "synapse", f"{name}-fr") is None
        again = suite_doc("two-countries", namespace, name=name, patch=PATCH)
        kube.create(again)
        wait_ready(kube, again, timeout=180)
        apps = {cc: Applied.read(kube, f"{name}-{cc}") for cc in ("fr", "de")}
        for cc, app in apps.items():
            assert (app.secrets["synapse-keys"]["signing.key"], app.secrets["matrix-postgres"]["password"]) \
                == before[cc], f"{cc}: the retained Secrets were not reused"
            start_tenant(lab, cc, app)  # the same data folder: the retained volume
        for cc in ("fr", "de"):
            lab.wait_http(f"http://{lab.ip(cc, 'synapse')}:8008/health", proc=f"synapse-{cc}")
        for cc, t in (("fr", fr), ("de", de)):
            assert list(t.server_key()["verify_keys"]) == [signing_key_id(before[cc][0])]
        assert {"Bonjour de Paris", "Hallo aus Berlin"} <= set(de.messages(bob_token, room))  # history kept
        fr.send(alice_token, room, "Toujours là")
        de.wait_message(bob_token, room, "Toujours là")
        de.send(bob_token, room, "Immer noch da")
        fr.wait_message(alice_token, room, "Immer noch da")
        print(f"[federation] done after {time.monotonic() - started:.0f} s")
    except BaseException:
        for proc in ("synapse-fr", "synapse-de", "synapse-rogue", "nginx"):
            print(f"----- {proc}\n{lab.log(proc)[-3000:]}")
        print(f"----- access log\n{lab.access_log()[-3000:]}")
        raise
    finally:
        lab.close()
        if kube.get(*SUITES, name, namespace):  # leave no retained tenant behind in the session's cluster
            kube.merge_patch(*SUITES, name, namespace, {"spec": {"deletionPolicy": "Delete"}})
        kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
