"""Decode + preprocess milliseconds per image, per transfer syntax, vs plain pydicom + resize.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_decode.py [--repeats 5] [--small] [--out PATH]

Contenders, for each file and each target size (full, 512, 256 px short side):

- ``pydicom``: ``pydicom.dcmread(f).pixel_array`` (+ ``cv2.resize`` with area interpolation to the
  target short side): what a user writes without this project. No LUTs, no windowing, no inversion.
- ``mmdx``: ``preprocessing.dicom.read_radiograph(f, target_size)``: decode with JPEG 2000
  resolution-aware decoding, modality LUT, VOI window, MONOCHROME1 inversion, orientation, resize.

Files: the real radiographs in ``../shared/data/dicom`` as they are, plus the chest radiograph
966_fixed.dcm (2128x2000, 12-bit) transcoded here into uncompressed, RLE, JPEG-LS and JPEG 2000 so
that syntaxes compare on the same pixels. Without ``../shared``, a generated 2048x2048 12-bit image
is transcoded instead. ``--small`` (for ``make bench``): one repeat, the transcoded set only, 256 px.
Contenders run interleaved (benchmarks/common.py); the median is reported. The table shows
CPU milliseconds (this process, all threads) and both speed-ups, CPU and wall-clock: on a machine
shared with other jobs wall time mostly measures the wait for a core.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pydicom  # noqa: E402
from common import RESULTS_DIR, format_table, machine_description, time_interleaved, write_json  # noqa: E402
from pydicom import uid  # noqa: E402

from preprocessing.dicom import read_radiograph  # noqa: E402

SHARED_DICOM = ROOT.parent / "shared" / "data" / "dicom"
TRANSCODE_SOURCE = "966_fixed.dcm"
TRANSCODES = [  # (label, syntax, encoder kwargs or None for native)
    ("uncompressed", uid.ExplicitVRLittleEndian, None),
    ("RLE", uid.RLELossless, {}),
    ("JPEG-LS lossless", uid.JPEGLSLossless, {}),
    ("JPEG 2000 lossless", uid.JPEG2000Lossless, {}),
]


def naive(path: Path, target: int | None) -> np.ndarray:
    """What a user would write with plain pydicom: decode everything, then shrink."""
    pixels = pydicom.dcmread(path).pixel_array
    if target is None or min(pixels.shape) <= target:
        return pixels
    scale = target / min(pixels.shape)
    size = (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale))
    return cv2.resize(pixels.astype(np.float32), size, interpolation=cv2.INTER_AREA)


def source_pixels() -> tuple[pydicom.Dataset, str]:
    """The dataset whose pixels are transcoded, and where it came from."""
    if (SHARED_DICOM / TRANSCODE_SOURCE).is_file():
        ds = pydicom.dcmread(SHARED_DICOM / TRANSCODE_SOURCE)
        ds.decompress()
        return ds, TRANSCODE_SOURCE
    y, x = np.mgrid[0:2048, 0:2048].astype(np.float32)
    image = 0.3 + 0.4 * np.exp(-(((x - 1024) / 200) ** 2)) + 0.2 * np.sin(x / 37) * np.cos(y / 53)
    pixels = np.round(np.clip(image, 0, 1) * 4095).astype(np.uint16)
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID = uid.DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = uid.generate_uid()
    ds.Modality, ds.Rows, ds.Columns, ds.SamplesPerPixel = "DX", 2048, 2048, 1
    ds.PhotometricInterpretation, ds.WindowCenter, ds.WindowWidth = "MONOCHROME2", 2048, 4096
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.tobytes()
    return ds, "generated 2048x2048"


def transcode(workdir: Path) -> list[tuple[str, Path]]:
    """Write the source pixels in each syntax of TRANSCODES; returns (label, path)."""
    base, origin = source_pixels()
    files = []
    for label, syntax, kwargs in TRANSCODES:
        ds = copy.deepcopy(base)
        if kwargs is None:
            ds.file_meta.TransferSyntaxUID = syntax
        else:
            ds.compress(syntax, **kwargs)
        path = workdir / f"{label.replace(' ', '_')}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append((f"{label} ({origin})", path))
    return files


def real_files() -> list[tuple[str, Path]]:
    if not SHARED_DICOM.is_dir():
        return []
    return [(f"{pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID.name.split(',')[0]} ({p.name})", p)
            for p in sorted(SHARED_DICOM.glob("*.dcm"))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--small", action="store_true", help="1 repeat, transcoded files only, 256 px")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "decode.json")
    a = ap.parse_args()
    warnings.simplefilter("ignore")  # pydicom's notes about odd but readable headers
    repeats = 1 if a.small else a.repeats
    targets: list[int | None] = [256] if a.small else [None, 512, 256]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = transcode(Path(tmp)) + ([] if a.small else real_files())
        for label, path in files:
            shape = pydicom.dcmread(path, stop_before_pixels=True)
            row: dict[str, object] = {"file": label, "shape": f"{shape.Rows}x{shape.Columns}",
                                      "MB": round(path.stat().st_size / 1e6, 2)}
            for target in targets:
                suffix = "full" if target is None else str(target)
                timings = time_interleaved({
                    "pydicom": lambda p=path, t=target: naive(p, t),
                    "mmdx": lambda p=path, t=target: read_radiograph(p, target_size=t),
                }, repeats=repeats, warmup=1)
                row[f"pydicom_{suffix}_ms"] = timings["pydicom"].median * 1000
                row[f"mmdx_{suffix}_ms"] = timings["mmdx"].median * 1000
                row[f"speedup_{suffix}"] = timings["pydicom"].median / timings["mmdx"].median
                # CPU time tells "slower" from "starved" on a machine shared with other jobs
                row[f"pydicom_{suffix}_cpu_ms"] = timings["pydicom"].cpu_median * 1000
                row[f"mmdx_{suffix}_cpu_ms"] = timings["mmdx"].cpu_median * 1000
                row[f"cpu_speedup_{suffix}"] = timings["pydicom"].cpu_median / timings["mmdx"].cpu_median
                row[f"reduction_{suffix}"] = read_radiograph(path, target_size=target).decode_reduction
            rows.append(row)
            print(f"done: {label}", file=sys.stderr, flush=True)

    columns = ["file", "shape", "MB"]
    for target in targets:
        suffix = "full" if target is None else str(target)
        columns += [f"pydicom_{suffix}_cpu_ms", f"mmdx_{suffix}_cpu_ms", f"cpu_speedup_{suffix}", f"speedup_{suffix}"]
    print(format_table(rows, columns))
    out = write_json({"benchmark": "decode", "repeats": repeats, "targets": targets,
                      "machine": machine_description(), "pydicom": pydicom.__version__, "rows": rows}, a.out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
