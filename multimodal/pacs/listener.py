"""A DICOM Storage SCP that scores the CR/DX studies it receives and sends an SR back (C-STORE).

Nothing received is lost: each instance is written to ``<spool>/incoming/<StudyInstanceUID>/``
(temporary file, fsync, atomic rename, fsync of the folder) before C-STORE success is returned. A
study is complete once no instance arrived for ``quiet_period`` seconds and every association that
brought part of it has ended (released, aborted or closed by the network timeout), so a sender that
pauses mid-study does not get two SRs for it; a background worker reads it from the spool, scores
it, sends the SR to the destination and only then moves the instances it used to
``<spool>/done/<uid>/`` (with the SR and ``accounting.jsonl``: one line per received instance,
used with its view, or skipped / failed with the reason, by the project's view rule,
:mod:`preprocessing.views`), those it did not use to ``<spool>/skipped/<uid>/`` and unreadable
ones to ``<spool>/failed/<uid>/``. A study that cannot be scored at all goes to
``<spool>/failed/<uid>/`` with the reason in ``error.txt``. On start, studies left in
``incoming`` by a crash or kill are queued again.

Back-pressure: at most ``max_queue`` studies wait for scoring; a new study beyond that is refused
with status A700 (out of resources) so that the sender retries later.
"""

from __future__ import annotations

import io
import json
import logging
import os
import queue
import re
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.sop_class import (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    Verification,
)

from multimodal.pacs import PacsError
from multimodal.pacs.access import AccessPolicy
from multimodal.security import audit
from multimodal.security.tls import TlsConfig, explain_certificate_error
from preprocessing.crypto import Keyring, read_file, seal_file
from multimodal.pacs.scoring import scored_study

log = logging.getLogger(__name__)

ACCEPTED_SOP_CLASSES = (ComputedRadiographyImageStorage, DigitalXRayImageStorageForPresentation,
                        DigitalXRayImageStorageForProcessing)
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
ORIGIN = "calling-aet.txt"  # in a spooled study's folder: the AE title that sent it


@dataclass(frozen=True)
class Destination:
    """A DICOM peer: AE title, host and port."""

    aet: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Destination:
        """Parse ``AET@host:port``."""
        match = re.fullmatch(r"([^@]{1,16})@([^:]+):(\d+)", text.strip())
        if not match:
            raise PacsError(f"send-to {text!r}: expected AET@HOST:PORT, e.g. ORTHANC@127.0.0.1:4242")
        return cls(match.group(1), match.group(2), int(match.group(3)))

    def __str__(self) -> str:
        return f"{self.aet}@{self.host}:{self.port}"


def c_store(datasets: Sequence[Dataset], destination: Destination, calling_aet: str = "MMDX",
            timeout: float = 30.0, tls: TlsConfig | None = None) -> None:
    """Send instances to ``destination`` over one association (TLS when ``tls`` is given); raises
    PacsError unless all succeed."""
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    # One context per (class, transfer syntax): the peer must accept each instance as it is encoded.
    syntaxes = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}
    for sop_class in sorted({str(ds.SOPClassUID) for ds in datasets}):
        encoded = {str(ds.file_meta.TransferSyntaxUID) for ds in datasets
                   if str(ds.SOPClassUID) == sop_class and "TransferSyntaxUID" in getattr(ds, "file_meta", {})}
        for syntax in sorted(syntaxes | encoded):
            ae.add_requested_context(sop_class, syntax)
    context = tls.client_context() if tls else None
    assoc = ae.associate(destination.host, destination.port, ae_title=destination.aet,
                         tls_args=(context, destination.host) if context else None)
    if not assoc.is_established:
        raise PacsError(f"{destination}: " + (_tls_failure(destination, context, timeout) if context and not
                                              assoc.is_rejected else "association rejected or peer unreachable"))
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            code = status.get("Status") if status else None
            if code != STATUS_SUCCESS:
                reason = f"status 0x{code:04X}" if code is not None else "no answer (timeout or abort)"
                raise PacsError(f"{destination}: C-STORE of {ds.SOPInstanceUID} failed: {reason}")
    finally:
        assoc.release()


def _tls_failure(destination: Destination, context, timeout: float) -> str:
    """Why a TLS association failed, from a handshake of our own (pynetdicom only logs it)."""
    import socket
    import ssl

    try:
        with socket.create_connection((destination.host, destination.port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=destination.host) as tls_socket:
            tls_socket.recv(1)  # TLS 1.3 reports a refused client certificate on the first read
    except (ssl.SSLError, ssl.CertificateError) as err:
        return explain_certificate_error(err)
    except OSError as err:
        return f"peer unreachable ({err})"
    return "association rejected or aborted after the TLS handshake"


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` is either absent or complete and on disk, even after a kill."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Listener:
    """An embeddable Storage SCP with a spool and a scoring worker; see the module docstring.

    ``scorer`` maps a study's datasets to the SR to send (``multimodal.pacs.scoring.load_scorer``
    builds one from a model). ``send_to`` is a Destination or ``AET@host:port`` (None: the SR is
    only kept in the spool). ``allowed_aets`` (``AET`` or ``AET:store``) and ``allowed_networks``
    (CIDR) say who may call (:class:`multimodal.pacs.access.AccessPolicy`; None: anyone, on a
    loopback bind only). ``tls`` secures both the listener and the C-STORE of SRs. With a key file
    (``MMDX_KEY_FILE``) the spool and the SRs kept in it are encrypted. ``quiet_period`` is in seconds.
    """

    def __init__(self, scorer: Callable[[list[Dataset]], Dataset], spool: str | Path, aet: str = "MMDX",
                 port: int = 11112, host: str = "127.0.0.1", send_to: Destination | str | None = None,
                 allowed_aets: Sequence[str] | None = None, quiet_period: float = 5.0, max_queue: int = 64,
                 allowed_networks: Sequence[str] | None = None, tls: TlsConfig | None = None):
        if max_queue < 1:
            raise PacsError(f"max_queue must be at least 1, got {max_queue}")
        self.scorer = scorer
        self.spool = Path(spool)
        self.incoming, self.done, self.failed, self.skipped = (
            self.spool / name for name in ("incoming", "done", "failed", "skipped"))
        self.aet, self.host, self.port = aet, host, port
        self.send_to = Destination.parse(send_to) if isinstance(send_to, str) else send_to
        self.policy = AccessPolicy.parse(allowed_aets, allowed_networks)
        self.policy.check_bind(host)
        self.tls = tls
        self.keyring = Keyring.from_env()
        self.quiet_period = quiet_period
        self.max_queue = max_queue
        self._queue: queue.Queue[str] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._last_arrival: dict[str, float] = {}  # study uid -> monotonic time of its last instance
        self._active: set[str] = set()  # queued or being scored
        self._open: dict[object, set[str]] = {}  # open association -> the studies it brought so far
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server = None

    # -- receiving ---------------------------------------------------------------------------
    def _on_requested(self, event) -> None:
        rq = event.assoc.requestor
        reason = self.policy.refusal(rq.primitive.calling_ae_title, rq.primitive.called_ae_title, self.aet,
                                     rq.address)
        if reason:
            log.warning("refused association from %s at %s: %s", rq.primitive.calling_ae_title.strip(), rq.address,
                        reason)
            # Permanent rejection by the service user; 0x07 / 0x03: called / calling AE not recognised.
            event.assoc.acse.send_reject(0x01, 0x01, 0x07 if reason.startswith("called") else 0x03)

    def _accept_tls(self) -> tuple:
        """pynetdicom's TLS accept, logging a refused handshake with the peer and the reason."""
        import ssl

        client, address = self._server.socket.accept()
        try:
            return self._server.ssl_context.wrap_socket(client, server_side=True), address
        except (ssl.SSLError, OSError) as err:
            client.close()
            log.warning("refused TLS connection from %s: %s", address[0], explain_certificate_error(err))
            raise

    def _on_store(self, event) -> int:
        try:
            study_uid = str(event.dataset.StudyInstanceUID)
        except Exception:  # noqa: BLE001 (any decode failure means the same to the sender)
            return STATUS_CANNOT_UNDERSTAND
        sop_uid = str(event.request.AffectedSOPInstanceUID)
        if not (_UID.match(study_uid) and _UID.match(sop_uid)):
            return STATUS_CANNOT_UNDERSTAND
        with self._lock:
            pending = len(set(self._last_arrival) | self._active)
            if study_uid not in self._last_arrival and study_uid not in self._active and pending >= self.max_queue:
                log.warning("refusing study %s: %d studies already wait for scoring", study_uid, pending)
                return STATUS_OUT_OF_RESOURCES
        try:
            data = event.encoded_dataset()
            data = self.keyring.encrypt(data) if self.keyring else data
            _write_atomic(self.incoming / study_uid / f"{sop_uid}.dcm", data)
            if not (self.incoming / study_uid / ORIGIN).exists():
                _write_atomic(self.incoming / study_uid / ORIGIN, event.assoc.requestor.ae_title.strip().encode())
        except OSError as err:
            log.error("cannot spool %s of study %s: %s", sop_uid, study_uid, err)
            return STATUS_OUT_OF_RESOURCES
        with self._lock:
            self._last_arrival[study_uid] = time.monotonic()
            self._open.setdefault(event.assoc, set()).add(study_uid)
        return STATUS_SUCCESS

    def _on_association_end(self, event) -> None:
        """The studies an association brought may be scored once quiet (release, abort and close all end it)."""
        with self._lock:
            self._open.pop(event.assoc, None)

    def _recover_spool(self) -> int:
        """Mark studies left in ``incoming`` as complete now; returns how many."""
        self.incoming.mkdir(parents=True, exist_ok=True)
        for tmp in self.incoming.glob("*/*.tmp"):
            tmp.unlink()  # a write cut short: the sender never got success for it
        studies = [d.name for d in self.incoming.iterdir() if d.is_dir() and any(d.glob("*.dcm"))]
        due = time.monotonic() - self.quiet_period
        with self._lock:
            for uid in studies:
                self._last_arrival[uid] = due
        return len(studies)

    # -- scheduling and scoring --------------------------------------------------------------
    def _schedule(self) -> None:
        """Hand quiet studies to the worker queue (while there is room) until stopped."""
        while not self._stop.wait(min(0.2, self.quiet_period / 2 or 0.05)):
            now = time.monotonic()
            with self._lock:
                receiving = set().union(*self._open.values())
                due = [uid for uid, t in self._last_arrival.items()
                       if now - t >= self.quiet_period and uid not in self._active and uid not in receiving]
                for uid in due:
                    try:
                        self._queue.put_nowait(uid)
                    except queue.Full:
                        break
                    del self._last_arrival[uid]
                    self._active.add(uid)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                uid = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._process(uid)
            finally:
                with self._lock:
                    self._active.discard(uid)

    def _process(self, uid: str) -> None:
        files = sorted(self.incoming.joinpath(uid).glob("*.dcm"))
        if not files:
            return
        origin_file = self.incoming / uid / ORIGIN
        origin = origin_file.read_text() if origin_file.exists() else None
        model = getattr(self.scorer, "model", None)
        try:
            datasets = [pydicom.dcmread(io.BytesIO(read_file(f, self.keyring))) for f in files]
            audit.record("receive", uid, model, actor=origin, detail={"instances": len(files)})
            scored = scored_study(self.scorer(datasets))
            sr = scored.sr
            by_uid = scored.accounting(datasets)
        except Exception as err:  # noqa: BLE001 (one bad study must not stop the worker thread)
            log.error("study %s could not be scored: %s", uid, err)
            audit.record("score", uid, model, outcome="failure", actor=origin)
            self._move(uid, files, self.failed, note=f"{type(err).__name__}: {err}\n{traceback.format_exc()}")
            return
        audit.record("score", uid, model, actor=origin)
        send = self.send_to is not None and self.policy.may_receive_results(origin)
        if send:
            try:
                c_store([sr], self.send_to, calling_aet=self.aet, tls=self.tls)
                audit.record("send", uid, model, actor=self.aet, detail={"peer": str(self.send_to)})
            except PacsError as err:
                # Keep the study in incoming and try again after another quiet period.
                log.error("study %s: SR not sent, will retry: %s", uid, err)
                with self._lock:
                    self._last_arrival.setdefault(uid, time.monotonic())
                return
        accounting = {f: by_uid[str(ds.get("SOPInstanceUID", k))] for k, (f, ds) in enumerate(zip(files, datasets))}
        used = [a["view"] for a in accounting.values() if a["status"] == "used"]
        left = {status: [f for f, a in accounting.items() if a["status"] == status] for status in ("skipped", "failed")}
        log.info("study %s scored: used %d of %d instances (%s), skipped %d, failed %d; SR %s sent to %s", uid,
                 len(used), len(files), ", ".join(used), len(left["skipped"]), len(left["failed"]),
                 sr.SOPInstanceUID, self.send_to if send else "nobody")
        (self.done / uid).mkdir(parents=True, exist_ok=True)
        sr_path = self.done / uid / f"sr-{sr.SOPInstanceUID}.dcm"
        sr.save_as(sr_path, enforce_file_format=True)
        seal_file(sr_path, self.keyring)
        (self.done / uid / "accounting.jsonl").write_text(
            "".join(json.dumps({"file": f.name, **a}) + "\n" for f, a in accounting.items()))
        self._move(uid, left["skipped"], self.skipped)
        self._move(uid, left["failed"], self.failed)
        self._move(uid, [f for f in files if accounting[f]["status"] == "used"], self.done)

    def _move(self, uid: str, files: list[Path], target_root: Path, note: str | None = None) -> None:
        """Move the scored files (not any that arrived meanwhile) of a study out of ``incoming``."""
        if not files and note is None:
            return
        target = target_root / uid
        target.mkdir(parents=True, exist_ok=True)
        if note:
            (target / "error.txt").write_text(note)
        for f in files:
            os.replace(f, target / f.name)
        origin = self.incoming / uid / ORIGIN
        if origin.exists() and not any(origin.parent.glob("*.dcm")):
            os.replace(origin, target / ORIGIN)
        try:
            (self.incoming / uid).rmdir()
        except OSError:
            pass  # instances arrived while scoring: they are rescored after their own quiet period

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Listener:
        """Recover the spool, start the worker and the SCP (returns at once)."""
        recovered = self._recover_spool()
        if recovered:
            log.info("%d studies left in %s are queued again", recovered, self.incoming)
        ae = AE(ae_title=self.aet)
        for sop_class in ACCEPTED_SOP_CLASSES:
            ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        self._stop.clear()
        self._threads = [threading.Thread(target=f, name=f"mmdx-listener-{f.__name__}", daemon=True)
                         for f in (self._schedule, self._work)]
        for t in self._threads:
            t.start()
        try:
            self._server = ae.start_server((self.host, self.port), block=False,
                                           ssl_context=self.tls.server_context() if self.tls else None,
                                           evt_handlers=[(evt.EVT_REQUESTED, self._on_requested),
                                                         (evt.EVT_C_STORE, self._on_store),
                                                         (evt.EVT_RELEASED, self._on_association_end),
                                                         (evt.EVT_ABORTED, self._on_association_end),
                                                         (evt.EVT_CONN_CLOSE, self._on_association_end)])
        except OSError as err:
            self.stop()
            raise PacsError(f"cannot listen on {self.host}:{self.port}: {err}") from err
        if self.tls:
            self._server.get_request = self._accept_tls  # pynetdicom drops failed handshakes without a word
        log.info("listening as %s on %s:%d%s; spool %s%s", self.aet, self.host, self.port, " (TLS)" if self.tls else "",
                 self.spool, " (encrypted)" if self.keyring else "")
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop accepting, let the worker finish the study in hand; queued studies stay spooled."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing waits for scoring (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._last_arrival and not self._active:
                    return True
            time.sleep(0.05)
        return False

    def __enter__(self) -> Listener:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def listen(model_dir: str | Path, aet: str = "MMDX", port: int = 11112, host: str = "127.0.0.1",
           send_to: str | None = None, spool: str | Path = "mmdx-spool", allowed_aets: Sequence[str] | None = None,
           quiet_period: float = 5.0, max_queue: int = 64, allowed_networks: Sequence[str] | None = None,
           tls_cert: str | None = None, tls_key: str | None = None, tls_ca: str | None = None,
           tls_require_client_cert: bool = True) -> None:
    """Run a Listener with the model at ``model_dir`` until SIGTERM or SIGINT (``mmdx listen``).

    TLS is on when ``tls_cert`` and ``tls_key`` are given (``tls_ca`` verifies peers)."""
    from multimodal.pacs.scoring import load_scorer

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    listener = Listener(load_scorer(model_dir), spool, aet=aet, port=port, host=host, send_to=send_to,
                        allowed_aets=allowed_aets, quiet_period=quiet_period, max_queue=max_queue,
                        allowed_networks=allowed_networks,
                        tls=TlsConfig(tls_cert, tls_key, tls_ca, tls_require_client_cert) if tls_cert else None)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with listener:
            while not stop.wait(0.5):
                pass
            log.info("stopping: the study in hand is finished, queued studies stay in %s", listener.incoming)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
