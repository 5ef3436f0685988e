"""What scoring produces: :class:`StudyResult`, and the durable, exactly-once JSON-lines log.

The log is the unit of crash safety for ``mmdx score``: every batch is appended as whole lines,
flushed and fsync'd before the next batch starts. On reopening, a torn last line (the process was
killed mid-write) is cut off, and the ids already present are returned so a resumed run skips them.
CSV and Parquet are produced from the finished log (:func:`convert_log`).

With a key file (``MMDX_KEY_FILE``) everything written here is encrypted at rest
(:mod:`preprocessing.crypto`): each log line on its own (so appends stay crash-safe), CSV/Parquet
tables and heat-map files as whole files. Reading decrypts transparently.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from preprocessing.crypto import DecryptionError, Keyring, is_encrypted_record, seal_file
from preprocessing.errors import MmdxError


@dataclass
class Peak:
    """Heat-map maximum of one observation, in pixels of the source image as stored in its file.

    ``x`` runs along columns and ``y`` along rows, continuous, with (0, 0) the top-left corner of
    the first pixel (the DICOM SCOORD convention); ``view`` indexes :attr:`StudyResult.sources`.
    """

    x: float
    y: float
    view: int = 0


@dataclass
class ObservationResult:
    """One observation: probability in [0, 1], the model's tuned threshold and the decision."""

    probability: float
    threshold: float
    positive: bool
    zones: list[str] = field(default_factory=list)
    peak: Peak | None = None


@dataclass
class SourceImage:
    """A view the result was computed from: file, DICOM identity (None for non-DICOM input), geometry.

    ``rows``/``columns`` are the stored image's size. ``view`` is the slot the view rule gave it
    (``"frontal (PA)"``, ``"lateral (LL)"``, ``"unknown"``; :mod:`preprocessing.views`); ``frame``
    is the frame used (1-based) of ``number_of_frames`` (the others are not used). ``square_to_pixels`` = (ax, bx, ay, by) maps
    a point (u, v) of the model's normalised square input ([0, 1], after letterboxing and display
    flips) to stored-image pixels: x = ax * u + bx, y = ay * v + by (see :class:`Peak`).
    """

    path: str | None
    rows: int
    columns: int
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    series_instance_uid: str | None = None
    square_to_pixels: tuple[float, float, float, float] | None = None
    view: str | None = None
    frame: int = 1
    number_of_frames: int = 1

    def to_pixels(self, u: float, v: float) -> tuple[float, float]:
        """(x, y) in stored-image pixels of the normalised square point (u, v)."""
        if self.square_to_pixels is None:
            raise ValueError(f"{self.path}: no geometry to map model coordinates to the image")
        ax, bx, ay, by = self.square_to_pixels
        return ax * u + bx, ay * v + by


@dataclass
class StudyResult:
    """Everything the model says about one study.

    ``heatmaps`` holds float32 ``[D, h, w]`` probabilities (sigmoid of the model's heat-map logits)
    on the first view's patch grid, D = len(observations) in model order; it is left out of
    :meth:`to_dict` unless asked for, since it is large. ``timings_ms`` has the keys ``decode``,
    ``preprocess``, ``model`` and ``generate`` (milliseconds; batch costs are split evenly).
    ``sources`` are the views used (with the view each became); ``failed`` and ``skipped`` list the
    study's other files as ``{"path", "reason"}`` (batch scoring writes those to its errors and
    skipped files instead, so that each file is accounted for in one place).
    """

    study_id: str
    observations: dict[str, ObservationResult]
    findings: str | None = None
    study_instance_uid: str | None = None
    sources: list[SourceImage] = field(default_factory=list)
    model: dict[str, str] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    heatmaps: np.ndarray | None = None
    failed: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def positives(self) -> list[str]:
        return [name for name, obs in self.observations.items() if obs.positive]

    def to_dict(self, include_heatmaps: bool = False) -> dict:
        """A JSON-ready dict (floats rounded to 6 digits); heat maps as nested lists when asked."""
        data = asdict(self)
        data.pop("heatmaps")
        for obs in data["observations"].values():
            obs["probability"] = round(obs["probability"], 6)
        data["timings_ms"] = {k: round(v, 3) for k, v in self.timings_ms.items()}
        if include_heatmaps and self.heatmaps is not None:
            data["heatmaps"] = np.round(self.heatmaps, 6).tolist()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> StudyResult:
        """Inverse of :meth:`to_dict` (heat maps come back as an array when present)."""
        data = dict(data)
        observations = {}
        for name, obs in data.pop("observations").items():
            peak = obs.get("peak")
            observations[name] = ObservationResult(**{**obs, "peak": Peak(**peak) if peak else None})
        heatmaps = data.pop("heatmaps", None)
        return cls(observations=observations, sources=[SourceImage(**s) for s in data.pop("sources", [])],
                   heatmaps=np.asarray(heatmaps, dtype=np.float32) if heatmaps is not None else None, **data)


class JsonlLog:
    """An append-only JSON-lines file that survives SIGKILL: whole lines, fsync'd per append.

    ``key`` names the field that identifies a record; :attr:`done` holds the keys already written
    (read when the log is opened), so that a caller can skip them and never write one twice.
    """

    def __init__(self, path: str | Path, key: str):
        self.path = Path(path)
        self.key = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.keyring = Keyring.from_env()
        self.done: set[str] = set()
        self.torn_bytes = _truncate_torn_tail(self.path)
        for record in read_jsonl(self.path):
            self.done.add(record[key])
        self._file = open(self.path, "ab")  # noqa: SIM115 (closed in close(); the log outlives a with block)

    def append(self, records: Iterable[dict]) -> int:
        """Write records not yet in the log; return how many were written. Durable on return."""
        fresh = []
        for record in records:
            if record[self.key] not in self.done:
                self.done.add(record[self.key])
                fresh.append(record)
        if fresh:
            # One write per batch: a kill leaves at most one torn line, at the very end.
            lines = (json.dumps(r, separators=(",", ":")) for r in fresh)
            if self.keyring is not None:
                lines = (self.keyring.encrypt_line(line) for line in lines)
            self._file.write("".join(line + "\n" for line in lines).encode())
            self._file.flush()
            os.fsync(self._file.fileno())
        return len(fresh)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonlLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _truncate_torn_tail(path: Path) -> int:
    """Cut everything after the last newline (a line cut short by a kill); return bytes removed."""
    if not path.exists():
        return 0
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        # Scan back in blocks for the last newline; logs can be large.
        pos, block = size, 1 << 16
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        else:
            keep = 0
        if keep < size:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        return size - keep


def read_jsonl(path: str | Path) -> Iterator[dict]:
    """Records of a JSON-lines file, encrypted lines decrypted with ``MMDX_KEY_FILE``'s keyring; a
    malformed complete line raises naming the file and line."""
    path = Path(path)
    if not path.exists():
        return
    keyring = Keyring.from_env()
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise MmdxError(f"{path}:{number}: not a JSON line ({err.msg})") from err
            if is_encrypted_record(record):
                if keyring is None:
                    raise DecryptionError(f"{path}:{number}",
                                          "the line is encrypted; set MMDX_KEY_FILE or pass --key-file")
                record = keyring.decrypt_record(record, f"{path}:{number}")
            yield record


def flatten_result(record: dict) -> dict:
    """One flat row per study for CSV/Parquet: ``<observation>.probability/positive/zones`` columns."""
    row = {"study_id": record["study_id"], "study_instance_uid": record.get("study_instance_uid"),
           "findings": record.get("findings")}
    for name, obs in record["observations"].items():
        row[f"{name}.probability"] = obs["probability"]
        row[f"{name}.positive"] = obs["positive"]
        row[f"{name}.zones"] = ";".join(obs.get("zones") or [])
    for key, value in (record.get("model") or {}).items():
        row[f"model.{key}"] = value
    for key, value in (record.get("timings_ms") or {}).items():
        row[f"ms.{key}"] = value
    return row


def convert_log(log_path: str | Path, out: str | Path, output_format: str) -> Path:
    """Write the results of a JSON-lines log as ``csv`` or ``parquet`` (flat columns); return ``out``."""
    import pyarrow as pa

    rows = [flatten_result(r) for r in read_jsonl(log_path)]
    table = pa.Table.from_pylist(rows)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if output_format == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, tmp)
    elif output_format == "csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, tmp)
    else:
        raise ValueError(f"output format must be 'csv' or 'parquet', got {output_format!r}")
    seal_file(tmp, Keyring.from_env())
    os.replace(tmp, out)  # readers never see a half-written table
    return out


def write_heatmaps(result: StudyResult, out_dir: str | Path, images: list[np.ndarray] | None = None,
                   file_stem: str | None = None) -> list[Path]:
    """Save ``<stem>.npz`` (heat maps ``[D, h, w]`` + observation names) and, given the first view as
    float ``[S, S]`` in [0, 1] (``images[0]``), one PNG overlay per positive observation.

    Returns the written paths. The overlay shows the heat map (upsampled, "inferno" colours) blended
    over the model's input image, so it is in the model's square frame, not the source's.
    """
    if result.heatmaps is None:
        return []
    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = file_stem or safe_file_stem(result.study_id)
    names = list(result.observations)
    npz = out_dir / f"{stem}.npz"
    np.savez_compressed(npz, heatmaps=result.heatmaps.astype(np.float32), observations=np.array(names))
    keyring = Keyring.from_env()
    seal_file(npz, keyring)
    written = [npz]
    if not images:
        return written
    from matplotlib import colormaps

    base = np.clip(images[0], 0.0, 1.0)
    gray = np.repeat(base[..., None], 3, axis=2)
    size = (base.shape[1], base.shape[0])
    for name in result.positives:
        heat = result.heatmaps[names.index(name)]
        heat = (heat - heat.min()) / max(float(heat.max() - heat.min()), 1e-6)
        heat_img = np.asarray(Image.fromarray((heat * 255).astype(np.uint8)).resize(size, Image.BILINEAR)) / 255.0
        color = colormaps["inferno"](heat_img)[..., :3]
        blend = (0.6 * gray + 0.4 * color) * 255
        path = out_dir / f"{stem}_{safe_file_stem(name)}.png"
        Image.fromarray(blend.astype(np.uint8)).save(path)
        seal_file(path, keyring)
        written.append(path)
    return written


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_stem(name: str) -> str:
    """A file name for a study id or observation, unique per name: characters outside
    ``[A-Za-z0-9._-]`` become ``_`` and, when anything had to change, the first 8 hex digits of the
    name's SHA-1 are appended, so that ``a/b``, ``a b`` and ``a?b`` never share a file
    (``a_b-3f2a...``). A name that is already safe (a DICOM UID) is kept as it is."""
    stem = _UNSAFE.sub("_", name).strip("._")[:120]
    if stem == name:
        return stem
    return f"{stem or 'study'}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
