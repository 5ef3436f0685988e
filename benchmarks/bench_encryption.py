"""What encryption at rest costs: preprocessing-cache reads/writes and result-log appends, clear vs
AES-256-GCM (``preprocessing.crypto``), plus the cipher's raw throughput.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_encryption.py [--size 512] [--entries 16] [--repeats 5] [--out PATH]

Contenders run interleaved (benchmarks/common.py) on the same generated phantom radiographs; the
median per entry is reported with CPU time next to wall time, and the ratios encrypted / clear.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import RESULTS_DIR, format_table, machine_description, time_interleaved, write_json  # noqa: E402

from multimodal.data.phantom import write_phantom_dataset  # noqa: E402
from multimodal.inference.results import JsonlLog  # noqa: E402
from preprocessing.cache import PreprocessCache  # noqa: E402
from preprocessing.crypto import Keyring, generate_key_file  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512, help="phantom image and cache size in px (default: 512)")
    p.add_argument("--entries", type=int, default=16, help="cache entries per repeat (default: 16)")
    p.add_argument("--records", type=int, default=500, help="result-log records per repeat (default: 500)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per contender (default: 5)")
    p.add_argument("--out", default=str(RESULTS_DIR / "encryption.json"), help="JSON results (default: %(default)s)")
    a = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = write_phantom_dataset(tmp / "phantom", studies=a.entries, seed=0, size=a.size)
        files = sorted((manifest.parent / "dicom").glob("*/*.dcm"))[: a.entries]
        generate_key_file(tmp / "key")
        keyring = Keyring.load(tmp / "key")
        config = {"target_size": a.size}
        clear, sealed = PreprocessCache(tmp / "clear", config), PreprocessCache(tmp / "sealed", config, keyring=keyring)
        pictures = [clear.read_radiograph(f) for f in files]
        for f in files:
            sealed.read_radiograph(f)
        entry_bytes = sum(clear.entry_path(f).stat().st_size for f in files) / len(files)
        record = {"study_id": "x", "observations": {f"obs{i}": {"probability": 0.5, "threshold": 0.5, "positive": False}
                                                    for i in range(14)}, "findings": "No acute findings." * 4}
        counter = iter(range(10**9))

        def append(log: JsonlLog) -> None:
            log.append({**record, "study_id": str(next(counter))} for _ in range(a.records))

        os.environ.pop("MMDX_KEY_FILE", None)
        clear_log = JsonlLog(tmp / "clear.jsonl", key="study_id")
        os.environ["MMDX_KEY_FILE"] = str(tmp / "key")
        sealed_log = JsonlLog(tmp / "sealed.jsonl", key="study_id")
        del os.environ["MMDX_KEY_FILE"]
        blob = os.urandom(1 << 24)
        cases = {
            "cache read, clear": lambda: [clear.load(f) for f in files],
            "cache read, encrypted": lambda: [sealed.load(f) for f in files],
            "cache write, clear": lambda: [clear.store(f, r) for f, r in zip(files, pictures)],
            "cache write, encrypted": lambda: [sealed.store(f, r) for f, r in zip(files, pictures)],
            "result log append, clear": lambda: append(clear_log),
            "result log append, encrypted": lambda: append(sealed_log),
            "AES-256-GCM encrypt 16 MiB": lambda: keyring.encrypt(blob),
        }
        timings = time_interleaved(cases, repeats=a.repeats)
        clear_log.close(), sealed_log.close()

    per = {"cache": a.entries, "result": a.records, "AES-256-GCM": 1}
    rows = []
    for name, t in timings.items():
        n = per[name.split()[0]]
        rows.append({"operation": name, "ms_per_item": t.median * 1e3 / n, "cpu_ms_per_item": t.cpu_median * 1e3 / n,
                     "spread": t.spread})
    rows[-1]["MiB_per_s"] = 16 / timings["AES-256-GCM encrypt 16 MiB"].median
    ratios = {kind: timings[f"{kind}, encrypted"].cpu_median / timings[f"{kind}, clear"].cpu_median
              for kind in ("cache read", "cache write", "result log append")}
    print(format_table(rows, ["operation", "ms_per_item", "cpu_ms_per_item", "spread", "MiB_per_s"]))
    print("CPU-time ratios encrypted / clear: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    print(f"cache entry: {entry_bytes / 1024:.0f} KiB ({a.size} px)")
    write_json({"machine": machine_description(), "args": vars(a), "entry_kib": entry_bytes / 1024,
                "results": rows, "ratios": ratios}, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
