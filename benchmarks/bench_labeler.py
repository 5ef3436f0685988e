"""Labeler throughput on one core: reports per second over the IU dev file (findings + impression).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_labeler.py [--repeats 3] [--json out.json]
        [--model runs/labeler --model-reports 200 --convention chexpert|iu]

Falls back to generated report-like text when ../shared is absent. With ``--model`` the learned labeler
(batches of 32) and the ensemble are timed on the first ``--model-reports`` reports, in the same run.
Prints a table and writes JSON.
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
    ap.add_argument("--convention", default="chexpert", choices=["chexpert", "iu"])
    ap.add_argument("--model", default=None, help="also time this learned labeler (bert, ensemble)")
    ap.add_argument("--model-reports", type=int, default=200, help="reports the learned labeler labels (default: 200)")
    a = ap.parse_args()
    texts, source = load_texts()
    label_report(texts[0], convention=a.convention)  # compile the regexes outside the timing
    chars = sum(len(t) for t in texts) / len(texts)
    rows = [("rules", *_rates(lambda batch: [label_report(t, convention=a.convention) for t in batch], texts, a.repeats))]
    if a.model:
        from multimodal.labeling import label_texts
        from multimodal.labeling.bert_labeler import BertLabeler

        model = BertLabeler.from_pretrained(a.model)
        some = texts[:a.model_reports]
        for method in ("bert", "ensemble"):
            rows.append((method, *_rates(lambda batch, m=method: label_texts(batch, m, model, a.convention), some, 1)))
    # Wall-clock rates suffer when other processes share the core; CPU-time rates show one core's speed.
    print("| method | source | reports | mean chars | best reports/s (wall) | best reports/s (CPU time) |")
    print("|---|---|---|---|---|---|")
    for method, n, wall, cpu in rows:
        print(f"| {method} | {source} | {n} | {chars:.0f} | {max(wall):.1f} | {max(cpu):.1f} |")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"source": source, "mean_chars": chars, "convention": a.convention,
                                  "methods": {m: {"reports": n, "reports_per_s_wall": w, "reports_per_s_cpu": c}
                                              for m, n, w, c in rows}}, indent=2))


def _rates(label, texts: list[str], repeats: int) -> tuple[int, list[float], list[float]]:
    """(reports, wall-clock rates, CPU-time rates) of ``label(texts)`` over ``repeats`` runs."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        label(texts)
        wall.append(len(texts) / (time.perf_counter() - t0))
        cpu.append(len(texts) / (time.process_time() - c0))
    return len(texts), wall, cpu


if __name__ == "__main__":
    main()
