"""A throw-away certificate authority for tests and demos of the TLS paths (``cryptography``).

``throwaway_pki(folder)`` writes a CA, a server certificate for ``localhost`` / ``127.0.0.1``, a
client certificate (both signed by the CA), a second unrelated CA (to test "wrong CA") and an
expired server certificate, all as PEM files with 0600 keys. Never use these in production: the
keys sit next to the certificates and the CA's key is kept.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from preprocessing.crypto import write_private


@dataclass(frozen=True)
class Pki:
    """PEM paths of a throw-away PKI."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    expired_cert: Path
    expired_key: Path


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _write(folder: Path, name: str, cert, key=None) -> tuple[Path, Path | None]:
    from cryptography.hazmat.primitives import serialization

    cert_path = folder / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is None:
        return cert_path, None
    key_path = folder / f"{name}.key"
    write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    return cert_path, key_path


def _certificate(subject: str, key, issuer: str, issuer_key, ca: bool, not_before: dt.datetime,
                 not_after: dt.datetime, server: bool = False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                      content_commitment=False, key_encipherment=False,
                                                      data_encipherment=False, key_agreement=False,
                                                      encipher_only=False, decipher_only=False), critical=True)
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server
            else [ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def throwaway_pki(folder: str | Path) -> Pki:
    """Write a CA, server/client/expired certificates and an unrelated CA under ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    day = dt.timedelta(days=1)
    ca_key, other_key = _key(), _key()
    ca = _certificate("mmdx test CA", ca_key, "mmdx test CA", ca_key, True, now - day, now + 30 * day)
    other = _certificate("unrelated CA", other_key, "unrelated CA", other_key, True, now - day, now + 30 * day)
    server_key, client_key, expired_key = _key(), _key(), _key()
    server = _certificate("localhost", server_key, "mmdx test CA", ca_key, False, now - day, now + 30 * day, True)
    client = _certificate("MMDX client", client_key, "mmdx test CA", ca_key, False, now - day, now + 30 * day)
    expired = _certificate("localhost", expired_key, "mmdx test CA", ca_key, False, now - 30 * day, now - day, True)
    ca_path, _ = _write(folder, "ca", ca)
    other_path, _ = _write(folder, "other-ca", other)
    server_cert, server_key_path = _write(folder, "server", server, server_key)
    client_cert, client_key_path = _write(folder, "client", client, client_key)
    expired_cert, expired_key_path = _write(folder, "expired", expired, expired_key)
    return Pki(ca_path, server_cert, server_key_path, client_cert, client_key_path, other_path, expired_cert,
               expired_key_path)
