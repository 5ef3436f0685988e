"""DICOM de-identification: PS3.15 Table E.1-1 (the Basic Application Level Confidentiality Profile
and the options asked for), applied at every nesting level, and the folder runner ``mmdx deid``.

Each attribute gets the action of its row in :mod:`multimodal.deid.profile` (see ``docs/deid.md``):

- X remove; Z empty (PatientID and PatientName get one keyed pseudonym instead, which Z allows, so
  one patient keeps one ID); D a dummy value of the attribute's VR (sequences and binary values are
  removed); U a keyed UID, whatever the VR it was stored with; K keep; C clean: dates shifted by a
  per-patient offset, free text through :func:`multimodal.deid.text.scrub_text`, AE titles
  pseudonymised, sequences cleaned item by item;
- combined actions take the emptiest choice that keeps the attribute's presence: X/Z, X/Z/D and
  Z/D empty (a Z/D date or time gets the dummy, since ContentDate is type 1 in SR and DX), X/D
  removes, X/Z/U* keeps the references with their UIDs replaced;
- attributes in no row are removed unless :data:`~multimodal.deid.profile.KEPT` lists them; private
  attributes are removed unless Retain Safe Private names them.

Replacements are keyed by a project secret (``salt``): the same input gives the same output under
one key, and an output of that key maps to itself, so de-identifying twice is stable. Pixel data
is never touched: burned-in annotation is refused, and a missing BurnedInAnnotation on images that
often carry text (ultrasound, secondary captures) is flagged and recorded as identity not removed.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pydicom
from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from multimodal.deid.profile import TABLE_SOURCE, Profile
from multimodal.deid.text import scrub_text
from multimodal.security import audit
from preprocessing.errors import DicomReadError, MmdxError, UnsupportedImageError

log = logging.getLogger(__name__)

# Shift range of the per-patient date offset (days into the past).
SHIFT_DAYS = (62, 730)
# Deeper sequence nesting than this is refused (real objects nest a handful of levels).
MAX_NESTING = 32
# Secondary Capture SOP classes (1.2.840.10008.5.1.4.1.1.7 and its multi-frame kinds) and
# modalities that often carry burned-in text; without a BurnedInAnnotation value they are flagged.
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
BURNED_IN_MODALITIES = ("US", "ES", "XC", "OT")

NOT_DICOM = "not a DICOM file"  # the one read outcome that is a skip, not a failure

_TEXT_VRS = ("LO", "SH", "ST", "LT", "UT", "UC")
_BINARY_VRS = ("OB", "OD", "OF", "OL", "OV", "OW", "UN", "SQ")
_DUMMY = {"DA": "19000101", "TM": "000000", "DT": "19000101000000", "AS": "000D", "IS": "0", "DS": "0"}


class DeidError(MmdxError):
    """One file could not be de-identified; the message names the reason, never a value."""


class _Pseudonyms:
    """Keyed replacements that are consistent (same value, same output) and recognisable (an
    output of this key maps to itself). UIDs are ``2.25.<96-bit digest><32-bit check>``; tokens
    are ``X`` + 11 + 4 hex digits (16 characters: fits SH, AE, CS)."""

    def __init__(self, key: str):
        self._key = key.encode()

    def _mac(self, kind: str, data: bytes, size: int) -> int:
        digest = hmac.new(self._key, kind.encode() + b"|" + data, hashlib.sha256).digest()
        return int.from_bytes(digest[:size], "big")

    def uid(self, value: str) -> str:
        if self.is_uid(value):
            return value
        body = self._mac("uid", value.encode(), 12)
        return f"2.25.{body << 32 | self._mac('uid-check', body.to_bytes(12, 'big'), 4)}"

    def is_uid(self, value: str) -> bool:
        match = re.fullmatch(r"2\.25\.(\d{1,39})", value)
        if not match:
            return False
        body, check = int(match[1]) >> 32, int(match[1]) & 0xFFFFFFFF
        return body < 1 << 96 and check == self._mac("uid-check", body.to_bytes(12, "big"), 4)

    def token(self, value: str) -> str:
        if self.is_token(value):
            return value
        body = f"{self._mac('token', value.encode(), 8) % 16**11:011X}"
        return f"X{body}{self._mac('token-check', body.encode(), 2):04X}"

    def is_token(self, value: str) -> bool:
        match = re.fullmatch(r"X([0-9A-F]{11})([0-9A-F]{4})", value)
        return bool(match) and int(match[2], 16) == self._mac("token-check", match[1].encode(), 2)

    def date_offset(self, patient_id: str) -> int:
        """Days to shift this patient's dates back; 0 for a pseudonym of this key (already shifted)."""
        if self.is_token(patient_id):
            return 0
        low, high = SHIFT_DAYS
        return low + self._mac("date-shift", patient_id.encode(), 8) % (high - low)


class Deidentifier:
    """De-identifies datasets in place under one profile and key; one instance per run.

    ``salt`` is the project key (None draws a random one: nothing links runs). ``options`` names
    profile options (:data:`multimodal.deid.profile.OPTIONS`). ``safe_private`` lists the private
    attributes Retain Safe Private keeps, as ``(group, private creator, element byte)``.
    """

    def __init__(self, salt: str | None = None, options: Iterable[str] = (), allow_burned_in: bool = False,
                 safe_private: Iterable[tuple[int, str, int]] = ()):
        self.salt = salt if salt is not None else os.urandom(16).hex()
        self.profile = Profile(tuple(options))
        self.allow_burned_in = allow_burned_in
        self.safe_private = frozenset(safe_private) if "retain_safe_private" in self.profile.options else frozenset()
        self._pseudonyms = _Pseudonyms(self.salt)
        self._offset = 0
        self._patient = ""

    def check(self, ds: Dataset, source: str | Path) -> None:
        """Raise UnsupportedImageError for burned-in annotation unless it is allowed."""
        if _burned_in(ds) == "YES" and not self.allow_burned_in:
            raise UnsupportedImageError(source, "BurnedInAnnotation is YES: text in the pixels may identify the "
                                                "patient and is not removed; pass --allow-burned-in to copy it anyway")

    def __call__(self, ds: Dataset) -> Dataset:
        """De-identify ``ds`` in place (pixels untouched) and return it; DeidError if it cannot be."""
        patient_id = str(ds.get("PatientID", "") or "")
        self._patient = self._pseudonyms.token(patient_id)
        self._offset = self._pseudonyms.date_offset(patient_id)
        try:
            self._clean(ds, 0)
        except RecursionError as err:
            raise DeidError(f"sequences nested deeper than Python's recursion limit ({MAX_NESTING} allowed)") from err
        # Z allows a dummy: one pseudonym per patient links a patient's studies, and marks the
        # dataset as done (its dates are not shifted again).
        ds.PatientID, ds.PatientName = self._patient, f"{self._patient}^"  # PN: family name component
        for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID"):
            if not ds.get(keyword):
                raise DeidError(f"no {keyword}")
        ds.preamble = None  # 128 free bytes before the header; a dual-format file may hide data there
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
        meta.TransferSyntaxUID = ds.file_meta.TransferSyntaxUID
        ds.file_meta = meta
        ds.PatientIdentityRemoved = "YES" if self.identity_removed(ds) else "NO"
        ds.DeidentificationMethod = f"mmdx deid, {TABLE_SOURCE}"[:64]  # LO; the code sequence says the rest
        ds.DeidentificationMethodCodeSequence = [_code(o.code, o.meaning) for o in self.profile.codes]
        dates = "retain_modified_dates" in self.profile.options
        ds.LongitudinalTemporalInformationModified = "MODIFIED" if dates else "REMOVED"
        return ds

    @staticmethod
    def identity_removed(ds: Dataset) -> bool:
        """Whether the profile supports PatientIdentityRemoved YES: not for pixels that carry, or
        may carry, burned-in text (the profile does not clean pixel data)."""
        return _burned_in(ds) == "NO" or (_burned_in(ds) == "" and not burned_in_suspected(ds))

    def _clean(self, ds: Dataset, depth: int) -> None:
        if depth > MAX_NESTING:
            raise DeidError(f"sequences nested deeper than {MAX_NESTING} levels")
        for tag in list(ds.keys()):
            action = self.profile.action(tag) if not tag.is_private else None
            kept = self._keep_private(ds, tag) if tag.is_private else tag in self.profile.kept
            if action is not None:
                self._apply(ds, ds[tag], action, depth)
            elif not kept:
                del ds[tag]
            elif ds[tag].VR == "SQ":  # a kept sequence's items are cleaned like the top level
                self._clean_items(ds[tag], depth)

    def _clean_items(self, elem: DataElement, depth: int) -> None:
        for item in elem.value:
            self._clean(item, depth + 1)

    def _apply(self, ds: Dataset, elem: DataElement, action: str, depth: int) -> None:
        vr = elem.VR
        if action in ("X", "X/D") or (action == "D" and vr in _BINARY_VRS):
            del ds[elem.tag]
        elif action == "K" and vr == "SQ":
            self._clean_items(elem, depth)
        elif action == "Z/D" and vr in ("DA", "DT", "TM"):  # D keeps a type 1 ContentDate (SR, DX) valid
            elem.value = _DUMMY[vr]
        elif action in ("Z", "Z/D", "X/Z", "X/Z/D"):
            self._empty(elem)
        elif action == "D":
            elem.value = self._dummy(elem)
        elif action in ("U", "X/Z/U*"):
            if vr == "SQ":
                self._clean_items(elem, depth)
            else:  # a UID stored under another VR (LO, SH...) is still a UID: replaced, and typed UI
                elem.VR = "UI"
                elem.value = self._map(elem.value, self._pseudonyms.uid)
        elif action == "C":
            self._clean_value(ds, elem, depth)

    def _dummy(self, elem: DataElement):
        """A value of the element's VR that says nothing: fixed for dates and numbers, a keyed
        pseudonym for UIDs and strings (so that equal values stay equal)."""
        if elem.VR in _DUMMY:
            return _DUMMY[elem.VR]
        if elem.VR == "UI":
            return self._map(elem.value, self._pseudonyms.uid)
        if elem.VR in (*_TEXT_VRS, "PN", "AE", "CS", "UR"):
            return self._map(elem.value, self._pseudonyms.token)
        return 0

    @staticmethod
    def _empty(elem: DataElement) -> None:
        elem.value = [] if elem.VR == "SQ" else None

    def _clean_value(self, ds: Dataset, elem: DataElement, depth: int) -> None:
        vr = elem.VR
        if vr == "SQ":
            self._clean_items(elem, depth)
        elif vr in ("DA", "DT"):
            elem.value = self._map(elem.value, self._shift)
        elif vr in ("AE", "PN"):
            elem.value = self._map(elem.value, self._pseudonyms.token)
        elif vr in _TEXT_VRS:
            elem.value = self._map(elem.value, scrub_text)
        elif vr != "TM":  # a whole-day shift leaves the time of day as it was
            del ds[elem.tag]

    @staticmethod
    def _map(value, fn):
        """``fn`` over each value of a (possibly multi-valued) element; empty stays empty."""
        if value is None or value == "":
            return value
        if isinstance(value, (list, MultiValue)):
            return [fn(str(v)) for v in value]
        return fn(str(value))

    def _shift(self, value: str) -> str:
        """A DA or DT moved back by the patient's offset; the time part is kept without its zone."""
        try:
            day = datetime.datetime.strptime(value[:8], "%Y%m%d")
        except ValueError:
            return ""
        time_of_day = re.split(r"[+-]", value[8:])[0]
        return (day - datetime.timedelta(days=self._offset)).strftime("%Y%m%d") + time_of_day

    def _keep_private(self, ds: Dataset, tag) -> bool:
        if not self.safe_private:
            return False
        if tag.is_private_creator:
            return any(group == tag.group and creator == ds[tag].value for group, creator, _ in self.safe_private)
        creator = ds.get((tag.group, tag.element >> 8))
        return creator is not None and (tag.group, creator.value, tag.element & 0xFF) in self.safe_private


def _burned_in(ds: Dataset) -> str:
    return str(ds.get("BurnedInAnnotation", "") or "").strip().upper()


def burned_in_suspected(ds: Dataset) -> bool:
    """An image without a BurnedInAnnotation value whose kind often carries burned-in text."""
    sop_class = str(ds.get("SOPClassUID", ""))
    return not _burned_in(ds) and (str(ds.get("Modality", "")) in BURNED_IN_MODALITIES
                                   or sop_class == SECONDARY_CAPTURE or sop_class.startswith(SECONDARY_CAPTURE + "."))


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
    return item


def _files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield path


def _read(path: Path, stop_before_pixels: bool = False) -> Dataset:
    """The dataset of a DICOM file; DicomReadError (naming the file, never a value) otherwise."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as err:
        raise DicomReadError(path, NOT_DICOM) from err
    except RecursionError as err:
        raise DicomReadError(path, "sequences nested too deeply to parse") from err
    except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError, NotImplementedError) as err:
        raise DicomReadError(path, f"cannot parse DICOM ({type(err).__name__}); truncated or damaged") from err
    if not stop_before_pixels:
        _check_complete(ds, path)
    return ds


def _check_complete(ds: Dataset, path: Path) -> None:
    """DicomReadError for a cut-off file: nothing parsed (pydicom gives up silently on some), an
    image header without its pixel data, or uncompressed pixel data shorter than the header says."""
    if len(ds) == 0:
        raise DicomReadError(path, "no attribute could be parsed; truncated or damaged")
    sizes = [ds.get(k) for k in ("Rows", "Columns", "BitsAllocated")]
    if "PixelData" not in ds:
        if all(sizes):
            raise DicomReadError(path, "image header without pixel data; truncated")
        return
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None or syntax.is_compressed or not all(sizes):
        return
    try:
        samples, frames = int(ds.get("SamplesPerPixel", 1)), int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError) as err:
        raise DicomReadError(path, "SamplesPerPixel or NumberOfFrames is not a number") from err
    rows, columns, bits = sizes
    expected = rows * columns * samples * frames * bits // 8
    if len(ds.PixelData) < expected:
        raise DicomReadError(path, f"pixel data truncated ({len(ds.PixelData)} of {expected} bytes)")


def _target(out: Path, ds: Dataset) -> Path:
    """``out/<StudyInstanceUID>/<SOPInstanceUID>.dcm`` from generated UIDs, checked to lie in ``out``."""
    study, sop = str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)
    if not all(re.fullmatch(r"2\.25\.\d{1,39}", uid) for uid in (study, sop)):
        raise DeidError("output UIDs are not generated UIDs")
    target = (out / study / f"{sop}.dcm").resolve()
    if not target.is_relative_to(out.resolve()):
        raise DeidError("output path escapes the output folder")
    return target


def _write_exclusive(ds: Dataset, target: Path) -> None:
    """Write to a temporary file, then link it to ``target``: complete or absent, never replacing
    a file that exists (FileExistsError)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".deid-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            ds.save_as(f, enforce_file_format=True)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, target)
    finally:
        os.unlink(tmp)


def default_log_path(out: str | Path) -> Path:
    """``<out>.deid-log.jsonl`` beside the output folder: the log names input files, whose names
    may identify patients, so it stays out of what is shared."""
    out = Path(out).resolve()
    return out.parent / f"{out.name}.deid-log.jsonl"


def deidentify_folder(input: str | Path, out: str | Path, salt: str | None = None, options: Iterable[str] = (),
                      allow_burned_in: bool = False, safe_private: Iterable[tuple[int, str, int]] = (),
                      log_path: str | Path | None = None) -> dict:
    """De-identify every DICOM file under ``input`` into ``out`` (``mmdx deid``).

    Files are written as ``out/<new StudyInstanceUID>/<new SOPInstanceUID>.dcm``, created
    exclusively and atomically: an existing file is never replaced (a second input with the same
    SOPInstanceUID, or a rerun, is skipped and reported). All headers are checked first: when an
    image is flagged BurnedInAnnotation=YES and ``allow_burned_in`` is false, nothing is written and
    UnsupportedImageError names the file. Every input gets one line in the JSON-lines log
    (``log_path``, default :func:`default_log_path`): ``{"input", "status": "written" | "skipped"
    | "failed", "reason", "output", "flags"}``.

    Returns ``{"input", "out", "log", "written", "skipped", "failed", "burned_in",
    "burned_in_suspected", "options", "profile"}``.
    """
    input, out = Path(input), Path(out)
    if not input.is_dir():
        raise DicomReadError(input, "input folder does not exist")
    deid = Deidentifier(salt, options, allow_burned_in, safe_private)
    log_path = Path(log_path) if log_path is not None else default_log_path(out)
    # An output folder or log inside the input folder is not input (a rerun would read it back).
    ours = (out.resolve(), log_path.resolve())
    files = [p for p in _files(input) if not (p.resolve().is_relative_to(ours[0]) or p.resolve() == ours[1])]
    for path in files:
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 (unreadable files are reported in the log below)
            continue
        deid.check(header, path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    counts = {"written": 0, "skipped": 0, "failed": 0, "burned_in": 0, "burned_in_suspected": 0}
    written: dict[Path, str] = {}
    with open(log_path, "a", encoding="utf-8") as log_file:
        for path in files:
            record = _one(deid, path, input, out, written)
            counts[record["status"]] += 1
            for flag in record["flags"]:
                counts[flag] += 1
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
            os.fsync(log_file.fileno())  # the line is on disk before the next file starts
    if counts["burned_in"]:
        log.warning("%d images carry burned-in annotation; their pixels were copied unchanged", counts["burned_in"])
    audit.record("de-identify", detail={k: counts[k] for k in ("written", "skipped", "failed")})
    return {"input": str(input), "out": str(out), "log": str(log_path), **counts,
            "options": list(deid.profile.options), "profile": TABLE_SOURCE}


def _one(deid: Deidentifier, path: Path, input: Path, out: Path, written: dict[Path, str]) -> dict:
    """De-identify and write one file; the log record says what happened and why."""
    record = {"input": path.relative_to(input).as_posix(), "status": "failed", "reason": None, "output": None,
              "flags": []}
    try:
        ds = _read(path)
    except DicomReadError as err:
        record.update(status="skipped" if err.reason == NOT_DICOM else "failed", reason=err.reason)
        return record
    record["flags"] = ["burned_in"] * (_burned_in(ds) == "YES") + ["burned_in_suspected"] * burned_in_suspected(ds)
    try:
        target = _target(out, deid(ds))
        record["output"] = target.relative_to(out.resolve()).as_posix()
        if target in written:
            record.update(status="skipped", reason=f"same SOPInstanceUID as {written[target]} (written)")
            return record
        _write_exclusive(ds, target)
    except DeidError as err:
        record["reason"] = str(err)
    except FileExistsError:
        record.update(status="skipped", reason="output exists (an earlier run wrote it); not replaced")
    except Exception as err:  # noqa: BLE001 (one bad file is reported and the run goes on; the type, never a value)
        record["reason"] = f"cannot de-identify or write ({type(err).__name__})"
    else:
        record["status"] = "written"
        written[target] = record["input"]
    return record
