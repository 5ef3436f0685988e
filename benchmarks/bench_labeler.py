"""Labeler throughput on one core: reports per second over the IU dev file (findings + impression).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_labeler.py [--repeats 3] [--json out.json]

Falls back to generated report-like text when ../shared is absent. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from preprocessing.report_labeler import join_fields, label_report  # noqa: E402

DEV_FILE = ROOT / "../shared/data/iu_xray_reports/reports_dev.jsonl"
_SENTENCES = (
    "The heart is normal in size.", "Mild cardiomegaly.", "No pneumothorax or pleural effusion.",
    "Left basilar opacity may represent atelectasis.", "There are no XXXX of a pleural effusion.",
    "Right PICC tip in the SVC.", "Lungs are clear.", "No acute cardiopulmonary abnormality.",
)


def load_texts() -> tuple[list[str], str]:
    """Report texts to label and where they came from."""
    if DEV_FILE.is_file():
        rows = [json.loads(line) for line in DEV_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [join_fields(r, ("findings", "impression")) for r in rows], "IU dev file"
    rng = random.Random(0)
    return [" ".join(rng.sample(_SENTENCES, 5)) for _ in range(3000)], "generated"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/bench_labeler.json")
    a = ap.parse_args()
    texts, source = load_texts()
    label_report(texts[0])  # compile the regexes outside the timing
    rates, cpu_rates = [], []
    for _ in range(a.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for t in texts:
            label_report(t)
        rates.append(len(texts) / (time.perf_counter() - t0))
        cpu_rates.append(len(texts) / (time.process_time() - c0))
    chars = sum(len(t) for t in texts) / len(texts)
    # Wall-clock rates suffer when other processes share the core; CPU-time rates show one core's speed.
    print("| source | reports | mean chars | best reports/s (wall) | best reports/s (CPU time) |\n|---|---|---|---|---|")
    print(f"| {source} | {len(texts)} | {chars:.0f} | {max(rates):.0f} | {max(cpu_rates):.0f} |")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"source": source, "reports": len(texts), "mean_chars": chars,
                                  "reports_per_s_wall": rates, "reports_per_s_cpu": cpu_rates}, indent=2))


if __name__ == "__main__":
    main()
