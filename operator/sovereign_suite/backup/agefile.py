"""Decrypting an age file for an X25519 identity, in the operator (which has no ``age`` binary): the generated
Secrets of a backup are restored by the operator itself, before its secrets step would generate them.

The format is age-encryption.org/v1 (https://age-encryption.org/v1, the C2SP spec C2SP/C2SP age.md): a text
header (version line, one ``-> X25519`` stanza per recipient, ``--- <MAC>``), then the payload (a 16-byte nonce and
ChaCha20-Poly1305 STREAM chunks of 64 KiB). Only what the backup program writes is accepted (X25519 recipients,
binary armour-less files); anything else is refused, never guessed. Checked against the real ``age`` (1.x, Debian)
in tests/test_agefile.py. Primitives: the ``cryptography`` package the operator already depends on.
"""

from __future__ import annotations

import base64
import hmac
import hashlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION_LINE = b"age-encryption.org/v1"
X25519_INFO = b"age-encryption.org/v1/X25519"
CHUNK = 64 * 1024
TAG = 16
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


class AgeError(Exception):
    pass


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _b64(text: bytes) -> bytes:
    """age's base64: standard alphabet, no padding (canonical: re-encoding gives the same text)."""
    try:
        s = text.decode("ascii")
        if "=" in s:
            raise AgeError("padded base64 in the header")
        raw = base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    except ValueError as err:  # not ASCII, or outside the alphabet (binascii.Error): a damaged or forged header
        raise AgeError(f"the header is not base64: {err}") from None
    if base64.b64encode(raw).decode().rstrip("=") != s:
        raise AgeError("non-canonical base64 in the header")
    return raw


def _bech32_polymod(values: list[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def parse_identity(text: str) -> bytes:
    """The 32-byte X25519 secret of an ``AGE-SECRET-KEY-1...`` line (Bech32, BIP 173); comment lines skipped."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if len(lines) != 1:
        raise AgeError("expected exactly one AGE-SECRET-KEY-1... line")
    s = lines[0].lower()
    hrp, sep, data = s.rpartition("1")
    if hrp != "age-secret-key-" or not sep or len(data) < 6 or any(c not in _BECH32 for c in data):
        raise AgeError("not an age X25519 identity (AGE-SECRET-KEY-1...)")
    values = [_BECH32.index(c) for c in data]
    if _bech32_polymod([ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + values) != 1:
        raise AgeError("the identity's checksum is wrong")
    acc, bits, out = 0, 0, bytearray()
    for v in values[:-6]:
        acc = (acc << 5) | v
        bits += 5
        while bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if len(out) != 32:
        raise AgeError("the identity does not hold 32 bytes")
    return bytes(out)


def _header(data: bytes) -> tuple[list[tuple[list[bytes], bytes]], bytes, bytes, int]:
    """(stanzas as (arguments, body), the bytes the MAC covers, the MAC, where the payload starts)."""
    pos = 0

    def line() -> bytes:
        nonlocal pos
        end = data.find(b"\n", pos)
        if end < 0:
            raise AgeError("truncated header")
        out, pos = data[pos:end], end + 1
        return out

    if line() != VERSION_LINE:
        raise AgeError("not an age v1 file (an armoured or other file?)")
    stanzas = []
    current = line()
    while current.startswith(b"-> "):
        args = current[3:].split(b" ")
        body = b""
        while True:
            chunk = line()
            body += chunk
            if len(chunk) < 64:
                break
        stanzas.append((args, _b64(body)))
        current = line()
    if not current.startswith(b"--- "):
        raise AgeError("malformed header (no --- line)")
    mac_start = pos - len(current) - 1 + 3  # the MAC covers the header up to and including "---"
    return stanzas, data[:mac_start], _b64(current[4:]), pos


def decrypt(data: bytes, identity: str) -> bytes:
    """The plaintext of an age file encrypted to ``identity``'s recipient. Raises AgeError: not for this
    identity, tampered with (header MAC, payload tags), truncated."""
    secret = X25519PrivateKey.from_private_bytes(parse_identity(identity))
    ours = secret.public_key().public_bytes_raw()
    stanzas, covered, mac, start = _header(data)
    file_key = None
    for args, body in stanzas:
        if args[0] != b"X25519":
            continue
        if len(args) != 2 or len(body) != 32:
            raise AgeError("malformed X25519 stanza")
        share = _b64(args[1])
        if len(share) != 32:
            raise AgeError("malformed X25519 stanza")
        try:
            shared = secret.exchange(X25519PublicKey.from_public_bytes(share))
        except ValueError:  # a low-order point: the shared secret would be all zeros (age refuses it)
            raise AgeError("malformed X25519 stanza (low-order share)") from None
        wrap = _hkdf(shared, share + ours, X25519_INFO)
        try:
            file_key = ChaCha20Poly1305(wrap).decrypt(b"\0" * 12, body, None)
            break
        except InvalidTag:
            continue  # a stanza for another recipient
    if file_key is None:
        raise AgeError("no recipient stanza of the file is for this identity")
    expected = hmac.new(_hkdf(file_key, b"", b"header"), covered, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, mac):
        raise AgeError("the header's MAC is wrong: the file was altered")
    nonce, payload = data[start:start + 16], data[start + 16:]
    if len(nonce) != 16:
        raise AgeError("truncated payload")
    aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
    out = bytearray()
    counter, pos = 0, 0
    while True:
        chunk = payload[pos:pos + CHUNK + TAG]
        pos += len(chunk)
        last = pos >= len(payload)
        try:
            out += aead.decrypt(counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00"), chunk, None)
        except InvalidTag:
            raise AgeError("a payload chunk fails its authentication: the file was altered or truncated") from None
        if last:
            break
        counter += 1
    return bytes(out)
