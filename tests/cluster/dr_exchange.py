"""A federated exchange between the restored French server and a German one (the disaster-recovery test,
test_real_node_dr.py; ``de.test`` is dr_federation.py's homeserver): the French user invites a German user into the
room created before the disaster, the German user joins it through his own server, reads FR's restored history
there, and messages go both ways, each read through the client API of the other server.

What each step needs over federation (Server-Server API; Synapse v1.163.2): the invite, FR -> DE (PUT
/_matrix/federation/v2/invite, after FR fetched DE's key from DE); the join, DE -> FR (make_join, send_join, FR
verifying DE's signature); the history on DE, backfilled from FR (the room's ``history_visibility`` is
``shared``, the ``private_chat`` preset's: synapse/handlers/room.py); each new message pushed to the other server
in a transaction (PUT /_matrix/federation/v1/send)."""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse

from . import dr_federation
from .conftest import wait_for
from .dr_matrix import history, send, synapse
from .realnode_fixture import INGRESS_NS, Real, call

DE_USER, DE_PASSWORD = "bruno", "bruno-password-in-the-test"
DE_URL = "http://127.0.0.1:8008"  # de.test's listener, from inside its pod


def de_call(r: Real, method: str, path: str, body=None, token: str | None = None):
    return call(r, INGRESS_NS, dr_federation.POD, method, DE_URL + path, body, token)


def register_on_de(r: Real, secret: str) -> dict:
    """The shared-secret admin registration (synapse/rest/admin/users.py, UserRegisterServlet, v1.163.2)."""
    status, out = de_call(r, "GET", "/_synapse/admin/v1/register")
    assert status == 200, out
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([out["nonce"].encode(), DE_USER.encode(), DE_PASSWORD.encode(), b"notadmin"]))
    status, reg = de_call(r, "POST", "/_synapse/admin/v1/register", {
        "nonce": out["nonce"], "username": DE_USER, "password": DE_PASSWORD, "admin": False, "mac": mac.hexdigest()})
    assert status == 200, reg
    return reg


def de_history(r: Real, token: str, room: str) -> list[tuple[str, str]]:
    status, out = de_call(r, "GET", f"/_matrix/client/v3/rooms/{urllib.parse.quote(room)}/messages?dir=b&limit=50",
                          token=token)
    assert status == 200, out
    return [(e["content"].get("msgtype", ""), e["content"].get("body", "")) for e in reversed(out["chunk"])
            if e["type"] == "m.room.message"]


def exchange(r: Real, fr_pod: str, fr_token: str, fr_user: str, room: str, restored: list[tuple[str, str]],
             route: dr_federation.Route) -> None:
    """The exchange; asserts each step and prints its time."""
    began = time.monotonic()
    de = register_on_de(r, route.registration_secret)
    de_user, de_token = de["user_id"], de["access_token"]
    assert de_user == f"@{DE_USER}:{dr_federation.DE}", de
    # FR invites: FR sends the invite to DE (FR -> DE), DE signs it
    status, out = call(r, INGRESS_NS, fr_pod, "POST", synapse(f"/_matrix/client/v3/rooms/{room}/invite"),
                       {"user_id": de_user}, fr_token)
    assert status == 200, (status, out, dr_federation.log(r))
    invited = time.monotonic() - began
    # DE's user joins through his own server (DE -> FR: make_join, send_join)
    status, out = de_call(r, "POST", f"/_matrix/client/v3/join/{urllib.parse.quote(room)}", {}, de_token)
    assert status == 200 and out.get("room_id") == room, (status, out, dr_federation.log(r))
    joined = time.monotonic() - began
    # FR's history, restored from the backup, read on DE (backfilled from FR)
    wait_for(lambda: de_history(r, de_token, room)[:len(restored)] == restored, timeout=30, interval=1,
             what=f"the restored history read on {dr_federation.DE}")
    # FR -> DE, then DE -> FR (each sent once the previous one arrived: one order on both servers)
    send(r, fr_pod, fr_token, room, "t4", {"msgtype": "m.text", "body": "bonjour de Paris"})
    wait_for(lambda: ("m.text", "bonjour de Paris") in de_history(r, de_token, room), timeout=30, interval=1,
             what="FR's message read on DE")
    status, out = de_call(r, "PUT", f"/_matrix/client/v3/rooms/{urllib.parse.quote(room)}/send/m.room.message/de1",
                          {"msgtype": "m.text", "body": "Hallo aus Berlin"}, de_token)
    assert status == 200, out
    wait_for(lambda: ("m.text", "Hallo aus Berlin") in history(r, fr_pod, fr_token, room), timeout=30, interval=1,
             what="DE's message read on FR")
    fr_sees = history(r, fr_pod, fr_token, room)
    de_sees = de_history(r, de_token, room)
    assert fr_sees == de_sees == restored + [("m.text", "bonjour de Paris"), ("m.text", "Hallo aus Berlin")], \
        (fr_sees, de_sees)
    status, members = call(r, INGRESS_NS, fr_pod, "GET", synapse(f"/_matrix/client/v3/rooms/{room}/joined_members"),
                           token=fr_token)
    assert status == 200 and set(members["joined"]) == {fr_user, de_user}, members
    print(f"federated exchange with {dr_federation.DE}: invite {invited:.1f} s, join {joined:.1f} s, history and "
          f"both messages read on both servers {time.monotonic() - began:.1f} s")
