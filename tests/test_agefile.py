"""The operator's age decryption (backup/agefile.py) against the real ``age`` binary (Debian's age 1.x, the
one the backup image encrypts with): what age encrypts, agefile decrypts, byte for byte, including the chunk
boundaries of the STREAM payload; another identity, a flipped bit, a truncated file are refused."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from sovereign_suite.backup.agefile import AgeError, decrypt, parse_identity

pytestmark = pytest.mark.skipif(shutil.which("age") is None, reason="age is installed by hack/install-backup-tools.sh")


def _identity(tmp: Path, name: str) -> tuple[str, str]:
    path = tmp / name
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    text = path.read_text()
    recipient = subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True,
                               text=True).stdout.strip()
    return text, recipient


def _encrypt(data: bytes, *recipients: str) -> bytes:
    args = [a for r in recipients for a in ("-r", r)]
    return subprocess.run(["age", "--encrypt", *args], input=data, check=True, capture_output=True).stdout


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 3 * 65536, 200_000])
def test_what_age_encrypts_agefile_decrypts(tmp_path, size):
    ident, rcpt = _identity(tmp_path, "k")
    other_ident, other = _identity(tmp_path, "o")
    plain = bytes((i * 7 + 3) % 251 for i in range(size))
    sealed = _encrypt(plain, other, rcpt)  # two stanzas: ours is the second
    assert decrypt(sealed, ident) == plain
    assert decrypt(sealed, other_ident) == plain


def test_refused_another_identity_a_flipped_bit_a_truncation(tmp_path):
    ident, rcpt = _identity(tmp_path, "k")
    other_ident, _ = _identity(tmp_path, "o")
    sealed = _encrypt(b"x" * 100_000, rcpt)
    with pytest.raises(AgeError, match="no recipient stanza"):
        decrypt(sealed, other_ident)
    flipped = bytearray(sealed)
    flipped[-50] ^= 1
    with pytest.raises(AgeError, match="altered"):
        decrypt(bytes(flipped), ident)
    with pytest.raises(AgeError, match="altered or truncated"):
        decrypt(sealed[:-70_000], ident)  # a whole last chunk gone: the new last one lacks the last flag
    header_end = sealed.index(b"\n---") + 1
    mac_flip = bytearray(sealed)
    mac_flip[header_end - 2] ^= 1  # inside the stanza body: the file key no longer unwraps, or the MAC fails
    with pytest.raises(AgeError):
        decrypt(bytes(mac_flip), ident)


def test_identity_parsing(tmp_path):
    ident, _ = _identity(tmp_path, "k")
    assert len(parse_identity(ident)) == 32
    line = next(ln for ln in ident.splitlines() if ln.startswith("AGE-SECRET-KEY-1"))
    broken = line[:-1] + ("Q" if line[-1] != "Q" else "P")
    with pytest.raises(AgeError, match="checksum"):
        parse_identity(broken)
    with pytest.raises(AgeError, match="not an age X25519 identity"):
        parse_identity("age1qqqq")


@pytest.mark.parametrize("byte", [ord("@"), ord("-"), 0xFF])
def test_a_header_byte_outside_base64_is_refused_as_damaged(tmp_path, byte):
    """A flipped bit can turn a stanza body's character into one outside base64 ('A' ^ 1 is '@') or outside
    ASCII: refused as AgeError like every other damage, never another exception (CI once drew such a key)."""
    ident, rcpt = _identity(tmp_path, "k")
    sealed = bytearray(_encrypt(b"x" * 1000, rcpt))
    header_end = sealed.index(b"\n---") + 1
    sealed[header_end - 2] = byte  # inside the last stanza body line
    with pytest.raises(AgeError, match="not base64"):
        decrypt(bytes(sealed), ident)


def test_a_low_order_share_is_refused_as_damaged(tmp_path):
    """A stanza whose ephemeral share is a low-order point (all zeros): the X25519 exchange would give an all-zero
    secret; refused as AgeError (cryptography raises ValueError there)."""
    ident, rcpt = _identity(tmp_path, "k")
    sealed = _encrypt(b"x" * 1000, rcpt)
    start = sealed.index(b"-> X25519 ") + len(b"-> X25519 ")
    end = sealed.index(b"\n", start)
    zeros = base64.b64encode(b"\0" * 32).rstrip(b"=")
    with pytest.raises(AgeError, match="low-order"):
        decrypt(sealed[:start] + zeros + sealed[end:], ident)
