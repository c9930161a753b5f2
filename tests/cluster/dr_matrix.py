"""The Matrix client the disaster-recovery test (test_real_node_dr.py) drives from a pod on the real node: the
FR tenant's Synapse through its Service, the key API, and the signature check another homeserver makes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from .realnode_fixture import INGRESS_NS, Real, call

SUITE = "dr"
FR_NS = f"{SUITE}-fr"
USER, PASSWORD = "marianne", "correct horse battery staple"


def synapse(path: str) -> str:
    return f"http://synapse.{FR_NS}.svc.cluster.local:8008{path}"


def register(r: Real, pod: str) -> dict:
    """Synapse's shared-secret registration (synapse/rest/admin/users.py, UserRegisterServlet, v1.163.2): HMAC-SHA1
    over nonce, user, password and "notadmin", NUL-separated, keyed with the generated registration secret."""
    secret = r.secret(FR_NS, "synapse-keys", "registration_shared_secret")
    status, out = call(r, INGRESS_NS, pod, "GET", synapse("/_synapse/admin/v1/register"))
    assert status == 200, out
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([out["nonce"].encode(), USER.encode(), PASSWORD.encode(), b"notadmin"]))
    status, reg = call(r, INGRESS_NS, pod, "POST", synapse("/_synapse/admin/v1/register"), {
        "nonce": out["nonce"], "username": USER, "password": PASSWORD, "admin": False, "mac": mac.hexdigest()})
    assert status == 200, reg
    return reg


UPLOAD = """import base64,sys,urllib.request
u,t=sys.argv[1:3]
req=urllib.request.Request(u,method='POST',data=base64.b64decode(sys.stdin.read()),
    headers={'Content-Type':'application/pdf','Authorization':'Bearer '+t})
print(urllib.request.urlopen(req,timeout=60).read().decode())
"""
DOWNLOAD = """import base64,sys,urllib.request,urllib.error
u,t=sys.argv[1:3]
try:
    r=urllib.request.urlopen(urllib.request.Request(u,headers={'Authorization':'Bearer '+t}),timeout=60)
    print(200); print(base64.b64encode(r.read()).decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
"""


def upload(r: Real, pod: str, token: str, data: bytes) -> str:
    out = r.kubectl("-n", INGRESS_NS, "exec", "-i", pod, "--", "python3", "-c", UPLOAD,
                    synapse("/_matrix/media/v3/upload?filename=minutes.pdf"), token,
                    input=base64.b64encode(data).decode())
    return json.loads(out)["content_uri"]


def download(r: Real, pod: str, token: str, mxc: str) -> tuple[int, bytes | str]:
    server, media_id = mxc.removeprefix("mxc://").split("/", 1)
    out = r.kubectl("-n", INGRESS_NS, "exec", pod, "--", "python3", "-c", DOWNLOAD,
                    synapse(f"/_matrix/client/v1/media/download/{server}/{media_id}"), token)
    status, _, body = out.partition("\n")
    return int(status), base64.b64decode(body.strip()) if status == "200" else body


def send(r: Real, pod: str, token: str, room: str, txn: str, content: dict) -> None:
    status, out = call(r, INGRESS_NS, pod, "PUT",
                       synapse(f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}"), content, token)
    assert status == 200, out


def history(r: Real, pod: str, token: str, room: str) -> list[tuple[str, str]]:
    status, out = call(r, INGRESS_NS, pod, "GET", synapse(f"/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=50"),
                       token=token)
    assert status == 200, out
    return [(e["content"]["msgtype"], e["content"]["body"]) for e in reversed(out["chunk"])
            if e["type"] == "m.room.message"]


def server_key(r: Real, pod: str) -> dict[str, str]:
    """key id -> public key, as other servers fetch it (the key API, served with the federation resource)."""
    status, out = call(r, INGRESS_NS, pod, "GET", synapse("/_matrix/key/v2/server"))
    assert status == 200, out
    return {k: v["key"] for k, v in out["verify_keys"].items()}


def key_response(r: Real, pod: str) -> dict:
    status, out = call(r, INGRESS_NS, pod, "GET", synapse("/_matrix/key/v2/server"))
    assert status == 200, out
    return out


def _unpadded(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def verify_signed(body: dict, server: str, keys: dict[str, str]) -> list[str]:
    """Check the signatures of ``server`` on ``body`` with ``keys`` (key id -> public key, unpadded base64), as
    another homeserver checks a response or an event of it: Matrix spec v1.16, appendices "Signing JSON" (the
    canonical JSON of the object without ``signatures`` and ``unsigned``, ed25519) and "Canonical JSON" (sorted
    keys, no insignificant whitespace, UTF-8). Returns the key ids that verified; raises when one does not."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    signed = {k: v for k, v in body.items() if k not in ("signatures", "unsigned")}
    message = json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    verified = []
    for key_id, signature in (body.get("signatures") or {}).get(server, {}).items():
        Ed25519PublicKey.from_public_bytes(_unpadded(keys[key_id])).verify(_unpadded(signature), message)
        verified.append(key_id)
    return verified
