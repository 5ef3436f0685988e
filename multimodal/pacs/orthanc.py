"""Start and stop a throw-away local Orthanc (with its DICOMweb plugin) for tests and demos.

Nothing is installed here: the Debian packages ``orthanc`` and ``orthanc-dicomweb`` must already be
present (``make setup`` installs them). Orthanc runs from a temporary folder that holds its config,
index and storage, on the ports given (or free ones), and is stopped by PID.

TLS: ``dicom_tls`` turns on Orthanc's DICOM TLS (``DicomTlsEnabled``; it then also calls the
``modalities`` over TLS). ``https`` puts ``socat`` (Debian package ``socat``) in front of the plain
HTTP port as a TLS terminator, the way hospitals front Orthanc with nginx: Debian's Orthanc 1.10.1
crashes on the first handshake with its own ``SslEnabled``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from multimodal.pacs import PacsError
from multimodal.security.tls import TlsConfig

ORTHANC_BINARY = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
SOCAT_BINARY = Path("/usr/bin/socat")


def missing_orthanc() -> str | None:
    """Why a local Orthanc cannot be started here (a sentence), or None when it can."""
    if not ORTHANC_BINARY.is_file():
        return f"Orthanc is not installed ({ORTHANC_BINARY} is missing; `make setup` installs it)"
    if not DICOMWEB_PLUGIN.is_file():
        return f"the Orthanc DICOMweb plugin is not installed ({DICOMWEB_PLUGIN} is missing)"
    return None


def free_port() -> int:
    """A TCP port that is free on localhost right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalOrthanc:
    """A local Orthanc server with HTTP basic authentication and DICOMweb at ``/dicom-web/``.

    ``modalities`` maps a peer's AE title to ``(host, port)``: Orthanc may only C-STORE/C-MOVE to
    peers listed there. Use as a context manager, or call ``start()`` / ``stop()``.
    """

    aet: str = "ORTHANC"
    user: str = "mmdx"
    password: str = "mmdx-secret"
    http_port: int = field(default_factory=free_port)
    dicom_port: int = field(default_factory=free_port)
    modalities: dict[str, tuple[str, int]] = field(default_factory=dict)
    workdir: Path | None = None
    dicom_tls: TlsConfig | None = None
    https: TlsConfig | None = None
    https_port: int = field(default_factory=free_port)
    _process: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _terminator: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        """The REST root, e.g. ``http://127.0.0.1:8042``."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb root, e.g. ``http://127.0.0.1:8042/dicom-web`` (``https://localhost:PORT/...``
        behind the TLS terminator)."""
        return f"https://localhost:{self.https_port}/dicom-web" if self.https else f"{self.url}/dicom-web"

    @property
    def auth(self) -> tuple[str, str]:
        return self.user, self.password

    def config(self) -> dict:
        """The Orthanc configuration (JSON-able) this server runs with."""
        return {
            "Name": "mmdx-test",
            "StorageDirectory": "storage",
            "IndexDirectory": "storage",
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {self.user: self.password},
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Ssl": self.https is not None},
            "DicomModalities": {aet: {"AET": aet, "Host": host, "Port": port, "UseDicomTls": self.dicom_tls is not None}
                                for aet, (host, port) in self.modalities.items()},
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomScuTimeout": 10,
            "SaveJobs": False,
            # Quicker close of outgoing associations, so tests do not wait on idle ones.
            "DicomAssociationCloseDelay": 0,
            **({"DicomTlsEnabled": True, "DicomTlsCertificate": str(self.dicom_tls.cert),
                "DicomTlsPrivateKey": str(self.dicom_tls.key), "DicomTlsTrustedCertificates": str(self.dicom_tls.ca),
                "DicomTlsRemoteCertificateRequired": self.dicom_tls.require_client_cert} if self.dicom_tls else {}),
        }

    def start(self, timeout: float = 20.0) -> LocalOrthanc:
        """Write the config, exec Orthanc and wait until ``GET /system`` answers."""
        reason = missing_orthanc()
        if reason:
            raise PacsError(reason)
        if self.https and not SOCAT_BINARY.is_file():
            raise PacsError(f"HTTPS needs socat as TLS terminator ({SOCAT_BINARY} is missing; `make setup` installs it)")
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mmdx-orthanc-")
            self.workdir = Path(self._tmp.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "orthanc.json"
        config_path.write_text(json.dumps(self.config(), indent=2))
        log = open(self.workdir / "orthanc.log", "wb")
        self._process = subprocess.Popen([str(ORTHANC_BINARY), str(config_path)], cwd=self.workdir,
                                         stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PacsError(f"Orthanc exited with code {self._process.returncode} at start; "
                                f"see {self.workdir / 'orthanc.log'}")
            try:
                if requests.get(f"{self.url}/system", auth=self.auth, timeout=1).ok:
                    return self._start_terminator()
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        self.stop()
        raise PacsError(f"Orthanc did not answer GET {self.url}/system within {timeout:.0f} s")

    def _start_terminator(self) -> LocalOrthanc:
        """socat: TLS on ``https_port`` (loopback), plain HTTP to Orthanc behind it."""
        if not self.https:
            return self
        listen = (f"OPENSSL-LISTEN:{self.https_port},bind=127.0.0.1,fork,reuseaddr,verify=0,"
                  f"cert={self.https.cert},key={self.https.key}")
        self._terminator = subprocess.Popen([str(SOCAT_BINARY), listen, f"TCP:127.0.0.1:{self.http_port}"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.https_port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        raise PacsError(f"the TLS terminator did not listen on port {self.https_port}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM Orthanc (and the TLS terminator) by PID and wait for them to exit (SIGKILL after
        ``timeout`` seconds)."""
        for process in (self._terminator, self._process):
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()
        self._process = self._terminator = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self.workdir = None

    def __enter__(self) -> LocalOrthanc:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
