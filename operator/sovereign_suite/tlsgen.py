"""A tenant's TLS material for its databases (components/tls.py declares it): one CA per tenant and one server
certificate per database or Redis, generated once into the tenant's Secret like every generated Secret, never
regenerated (secretgen.missing_keys fills in only the keys a Secret lacks: a server added later gets a
certificate from the CA already stored).

ECDSA P-256 keys (PostgreSQL, Redis, libpq, lib/pq and Python's ssl all accept them; generating one takes
milliseconds), PEM, the private keys unencrypted PKCS#8 (what ``ssl_key_file`` and ``tls-key-file`` read).
Validity: ten years, because nothing renews a generated certificate; docs/security.md says how to rotate, and
a NationalCloud with an internal issuer can leave that to cert-manager instead."""

from __future__ import annotations

import datetime
import ipaddress
from typing import Mapping

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .components.base import SecretKey

VALIDITY = datetime.timedelta(days=3650)
BACKDATE = datetime.timedelta(hours=1)  # a node whose clock lags a little still accepts a fresh certificate
TLS_GENERATORS = frozenset({"tls-ca-cert", "tls-ca-key", "tls-cert", "tls-key"})


class TlsStateError(ValueError):
    """A stored Secret holds half of a pair (a CA certificate without its key, a server key without its
    certificate...): the operator never overwrites a stored value, so it cannot repair it alone."""


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def new_ca(common_name: str, now: datetime.datetime | None = None) -> tuple[str, str]:
    """(certificate PEM, key PEM) of a self-signed CA that may sign server certificates only (path length 0)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name)).issuer_name(_name(common_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE).not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pem_cert(cert), _pem_key(key)


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def new_server(ca_cert_pem: str, ca_key_pem: str, hosts: tuple[str, ...],
               now: datetime.datetime | None = None, client: bool = False) -> tuple[str, str]:
    """(certificate PEM, key PEM) of a server certificate for ``hosts`` (DNS names or IP addresses, the first is
    also the common name), signed by the CA; with ``client``, a client certificate instead (clientAuth only: it
    cannot serve)."""
    if not hosts:
        raise ValueError("a server certificate needs at least one host")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0])).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE).not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                              else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _pem_cert(cert), _pem_key(key)


def _stem(key_name: str) -> str:
    return key_name.rsplit(".", 1)[0]


def fill(keys: Mapping[str, SecretKey], have: Mapping[str, str], secret: str) -> dict[str, str]:
    """Values for the TLS keys of ``keys`` that ``have`` (the stored Secret's decoded data) lacks. Raises
    TlsStateError when a stored pair is incomplete."""
    tls = {k: v for k, v in keys.items() if v.generator in TLS_GENERATORS}
    missing = {k for k in tls if k not in have}
    if not missing:
        return {}
    ca_cert_key = next(k for k, v in tls.items() if v.generator == "tls-ca-cert")
    ca_key_key = next(k for k, v in tls.items() if v.generator == "tls-ca-key")
    out: dict[str, str] = {}
    ca_missing = {ca_cert_key, ca_key_key} & missing
    if ca_missing == {ca_cert_key, ca_key_key}:
        signed = sorted(k for k, v in tls.items() if v.generator in ("tls-cert", "tls-key") and k in have)
        if signed:
            raise TlsStateError(f"Secret {secret} holds {', '.join(signed)} but not its CA ({ca_cert_key}, "
                                f"{ca_key_key}): delete the Secret to have the operator issue a new CA and "
                                "certificates (the pods reading them must then restart)")
        out[ca_cert_key], out[ca_key_key] = new_ca(tls[ca_cert_key].subject)
    elif ca_missing:
        raise TlsStateError(f"Secret {secret} holds half of its CA ({', '.join(sorted(ca_missing))} is missing): "
                            "delete the Secret to have the operator issue a new CA and certificates")
    ca_cert, ca_key = have.get(ca_cert_key) or out[ca_cert_key], have.get(ca_key_key) or out[ca_key_key]
    for cert_key in sorted(k for k, v in tls.items() if v.generator == "tls-cert"):
        key_key = next(k for k, v in tls.items() if v.generator == "tls-key" and _stem(k) == _stem(cert_key))
        pair = {cert_key, key_key} & missing
        if pair == {cert_key, key_key}:
            out[cert_key], out[key_key] = new_server(ca_cert, ca_key, tls[cert_key].hosts,
                                                     client=tls[cert_key].client)
        elif pair:
            raise TlsStateError(f"Secret {secret} holds half of a server's pair ({', '.join(sorted(pair))} is "
                                "missing): delete the Secret to have the operator issue a new CA and certificates")
    return out
