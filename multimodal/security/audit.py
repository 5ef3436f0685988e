"""An append-only, hash-chained audit trail of every access to patient data (``MMDX_AUDIT_LOG``).

One JSON line per event: ``seq``, ``time`` (UTC, ISO 8601), ``actor`` (the OS user, or the calling
AE title for DICOM peers), ``action`` (``read``, ``score``, ``send``, ``receive``, ``de-identify``,
``export``), ``study`` (SHA-256 of the StudyInstanceUID, never the UID itself), ``model``
(``{"name", "version", "sha256"}``), ``outcome`` (``success`` or ``failure``) and optional
``detail``; then ``prev`` (the hash of the previous line; 64 zeros for the first) and ``hash`` (the
SHA-256 of this line without its ``hash``). :func:`verify` recomputes both chains, so an edited,
removed or reordered line is found and named. Appends hold an exclusive ``flock`` on the file,
so the listener's threads and several processes share one log.

What it cannot see: an attacker who truncates the last lines or rewrites the whole chain. Ship the
events elsewhere as they happen for that: ``MMDX_AUDIT_SYSLOG=host:port`` also sends each event as
a DICOM PS3.15 A.5 / RFC 3881 ``AuditMessage`` (XML) over syslog (UDP), the form ATNA audit
repositories collect.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import logging
import logging.handlers
import os
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import quoteattr

from preprocessing.errors import MmdxError

AUDIT_LOG_ENV = "MMDX_AUDIT_LOG"
AUDIT_SYSLOG_ENV = "MMDX_AUDIT_SYSLOG"
ACTIONS = ("read", "score", "send", "receive", "de-identify", "export")
GENESIS = "0" * 64
# DICOM PS3.15 A.5: EventActionCode and the DCM EventID of each action.
_ATNA = {"read": ("R", "110103", "DICOM Instances Accessed"), "score": ("E", "110103", "DICOM Instances Accessed"),
         "send": ("R", "110104", "DICOM Instances Transferred"),
         "receive": ("C", "110104", "DICOM Instances Transferred"),
         "de-identify": ("C", "110103", "DICOM Instances Accessed"), "export": ("R", "110106", "Export")}

log = logging.getLogger(__name__)


class AuditError(MmdxError):
    """The audit log cannot be written or does not verify; the message names the file and line."""


def hash_uid(uid: str | None) -> str | None:
    """The study reference written to the log: SHA-256 of the UID (hex), None for None."""
    return hashlib.sha256(uid.encode()).hexdigest() if uid else None


def _line_hash(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _last_line(f) -> bytes:
    """The last complete line of a file open for reading (empty when there is none)."""
    size = f.seek(0, os.SEEK_END)
    pos, chunk = size, b""
    while pos > 0 and chunk.count(b"\n") < 2:
        pos = max(0, pos - 4096)
        f.seek(pos)
        chunk = f.read(size - pos)
    lines = chunk.rstrip(b"\n").split(b"\n")
    return lines[-1] if lines and lines[-1] else b""


class AuditLog:
    """Appends events to one audit file (created 0600); see the module docstring."""

    def __init__(self, path: str | Path, syslog: str | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._syslog = _syslog_handler(syslog) if syslog else None

    @classmethod
    def from_env(cls) -> AuditLog | None:
        """The log named by ``MMDX_AUDIT_LOG`` (with ``MMDX_AUDIT_SYSLOG``), or None when auditing is off."""
        path = os.environ.get(AUDIT_LOG_ENV)
        return cls(path, os.environ.get(AUDIT_SYSLOG_ENV)) if path else None

    def record(self, action: str, study_uid: str | None = None, model: dict | None = None,
               outcome: str = "success", actor: str | None = None, detail: dict | None = None) -> dict:
        """Append one event and return it; ``study_uid`` is hashed, ``detail`` must hold no identifiers."""
        if action not in ACTIONS:
            raise AuditError(f"{self.path}: unknown audit action {action!r}; expected one of {ACTIONS}")
        event = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                 "actor": actor or getpass.getuser(), "action": action, "study": hash_uid(study_uid),
                 "model": {k: model[k] for k in ("name", "version", "sha256") if k in model} if model else None,
                 "outcome": outcome}
        if detail:
            event["detail"] = detail
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                last = _last_line(f)
                previous = json.loads(last) if last else None
                event["seq"] = previous["seq"] + 1 if previous else 1
                event["prev"] = previous["hash"] if previous else GENESIS
                event["hash"] = _line_hash(event)
                f.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
                f.flush()
                os.fsync(f.fileno())
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        if self._syslog is not None:
            self._syslog.emit(logging.makeLogRecord({"msg": atna_message(event), "levelno": logging.INFO,
                                                     "levelname": "INFO"}))
        return event


def record(action: str, study_uid: str | None = None, model: dict | None = None, outcome: str = "success",
           actor: str | None = None, detail: dict | None = None) -> None:
    """Append an event to the log of ``MMDX_AUDIT_LOG``; nothing when auditing is off."""
    audit = AuditLog.from_env()
    if audit is not None:
        audit.record(action, study_uid, model, outcome, actor, detail)


def record_results(action: str, results) -> None:
    """One event per study result (``StudyResult``: its StudyInstanceUID, else its study id, is hashed)."""
    audit = AuditLog.from_env()
    if audit is not None:
        for result in results:
            audit.record(action, result.study_instance_uid or result.study_id, result.model)


def verify(path: str | Path) -> dict:
    """Check the chain of an audit log (``mmdx audit verify``).

    Returns ``{"log", "lines", "ok", "problems": ["line N: ...", ...]}``: a line whose own hash is
    wrong was edited; a ``prev`` that is not the previous line's hash, or a ``seq`` out of step,
    means a line was removed, inserted or moved before it.
    """
    path = Path(path)
    if not path.is_file():
        raise AuditError(f"{path}: no such audit log")
    problems, previous, count = [], None, 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            count = number
            try:
                event = json.loads(raw)
                own, prev, seq = event["hash"], event["prev"], event["seq"]
            except (json.JSONDecodeError, KeyError, TypeError):
                problems.append(f"line {number}: not an audit record (edited or damaged)")
                previous = None
                continue
            if _line_hash(event) != own:
                problems.append(f"line {number}: its content does not match its hash (the line was edited)")
            expected_seq = previous["seq"] + 1 if previous else 1
            expected_prev = previous["hash"] if previous else GENESIS
            if prev != expected_prev or seq != expected_seq:
                problems.append(f"line {number}: seq {seq} does not follow line {number - 1} (expected seq "
                                f"{expected_seq}): a line was removed, inserted or reordered before it")
            previous = event
    return {"log": str(path), "lines": count, "ok": not problems, "problems": problems}


def atna_message(event: dict) -> str:
    """An RFC 3881 / DICOM PS3.15 A.5 ``AuditMessage`` (XML) for one event."""
    action_code, event_id, meaning = _ATNA[event["action"]]
    outcome = "0" if event["outcome"] == "success" else "4"
    model = event.get("model") or {}
    study = (f'<ParticipantObjectIdentification ParticipantObjectID={quoteattr(event["study"])} '
             'ParticipantObjectTypeCode="2" ParticipantObjectTypeCodeRole="3">'
             '<ParticipantObjectIDTypeCode csd-code="110180" codeSystemName="DCM" '
             'originalText="Study Instance UID (SHA-256)"/></ParticipantObjectIdentification>'
             ) if event["study"] else ""
    return ('<?xml version="1.0" encoding="UTF-8"?><AuditMessage>'
            f'<EventIdentification EventActionCode="{action_code}" EventDateTime={quoteattr(event["time"])} '
            f'EventOutcomeIndicator="{outcome}"><EventID csd-code="{event_id}" codeSystemName="DCM" '
            f'originalText="{meaning}"/></EventIdentification>'
            f'<ActiveParticipant UserID={quoteattr(event["actor"])} UserIsRequestor="true"/>'
            f'<AuditSourceIdentification AuditSourceID={quoteattr("mmdx " + model.get("name", ""))}/>'
            f'{study}</AuditMessage>')


def _syslog_handler(target: str) -> logging.handlers.SysLogHandler:
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise AuditError(f"{AUDIT_SYSLOG_ENV}={target!r}: expected HOST:PORT")
    handler = logging.handlers.SysLogHandler((host, int(port)), facility=logging.handlers.SysLogHandler.LOG_AUTHPRIV)
    handler.ident = "mmdx: "
    return handler
