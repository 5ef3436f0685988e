"""TLS for DICOM (DIMSE) associations: ``ssl.SSLContext`` objects for pynetdicom, and clear errors.

pynetdicom speaks TLS when given a context: ``AE.start_server(..., ssl_context=server_context())``
for the listener, ``AE.associate(..., tls_args=(client_context(), hostname))`` for the C-STORE
sender. Both sides verify the peer against ``ca`` (PEM); the listener can demand a client
certificate (``require_client_cert``, DICOM PS3.15 B.1 "Basic TLS Secure Transport Connection
Profile" uses mutual authentication). TLS 1.2 is the floor.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from preprocessing.errors import ConfigError


@dataclass(frozen=True)
class TlsConfig:
    """Certificate chain ``cert`` + private ``key`` (PEM) presented to peers; ``ca`` (PEM) the
    authorities trusted for the peer's certificate (None: the system's); ``require_client_cert``
    (server side) refuses clients without a certificate signed by ``ca``."""

    cert: str | Path | None = None
    key: str | Path | None = None
    ca: str | Path | None = None
    require_client_cert: bool = True

    def _load(self, context: ssl.SSLContext) -> ssl.SSLContext:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        for name in ("cert", "key", "ca"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_file():
                raise ConfigError(f"tls_{name}", f"{value}: no such file")
        try:
            if self.cert:
                context.load_cert_chain(str(self.cert), str(self.key) if self.key else None)
            if self.ca:
                context.load_verify_locations(cafile=str(self.ca))
        except ssl.SSLError as err:
            raise ConfigError("tls", f"cannot load certificate/key/CA ({err.reason or err})") from err
        return context

    def server_context(self) -> ssl.SSLContext:
        """The listener's context: our certificate, client certificates checked against ``ca``."""
        if not (self.cert and self.key):
            raise ConfigError("tls_cert", "a TLS listener needs a certificate and its key")
        context = self._load(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        context.verify_mode = ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_OPTIONAL
        if not self.ca and self.require_client_cert:
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        return context

    def client_context(self) -> ssl.SSLContext:
        """The sender's context: the server's certificate and host name verified, ours presented."""
        return self._load(ssl.create_default_context(ssl.Purpose.SERVER_AUTH))


def explain_certificate_error(err: BaseException) -> str:
    """A sentence for a TLS failure: expired, unknown CA, wrong host name, or OpenSSL's reason."""
    text = str(err)
    if "certificate has expired" in text or "CERTIFICATE_EXPIRED" in text:
        return "the peer's TLS certificate has expired"
    if any(s in text for s in ("unable to get local issuer", "self-signed", "self signed", "unknown ca",
                               "UNKNOWN_CA")):
        return "the peer's TLS certificate is not signed by a trusted CA (give the CA's PEM file)"
    if "Hostname mismatch" in text or "IP address mismatch" in text:
        return "the peer's TLS certificate was issued for another host name"
    if "PEER_DID_NOT_RETURN_A_CERTIFICATE" in text or "peer did not return a certificate" in text:
        return "the client sent no certificate, and one is required"
    if "certificate required" in text or "CERTIFICATE_REQUIRED" in text:
        return "the peer requires a client certificate (give a certificate and key)"
    return f"TLS handshake failed ({text})"
