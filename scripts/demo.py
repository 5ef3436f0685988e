"""`make demo`: phantom studies -> train phantom-tiny -> evaluate -> score with SRs -> HTML report -> summary.

Each step is the `mmdx` command a user would type; the script prints it before running it.
Outputs go under runs/demo (override with MMDX_DEMO_DIR).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = Path(os.environ.get("MMDX_DEMO_DIR", ROOT / "runs" / "demo"))
MMDX = [sys.executable, "-m", "multimodal.cli"]


def step(title: str, *args: str) -> float:
    """Run one `mmdx` command, echoing it; return its wall time in seconds."""
    print(f"\n== {title}\n$ mmdx {shlex.join(args)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run([*MMDX, *args], check=True, cwd=ROOT)
    return time.perf_counter() - t0


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # One torch thread: on a 2-core machine with one core busy, 36 training steps took over 120 s
    # with two threads and 36 s with one (idle machine: 22 s vs 26 s). OMP_NUM_THREADS overrides.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    RUN.mkdir(parents=True, exist_ok=True)
    data, train_dir, eval_dir = RUN / "phantom", RUN / "train", RUN / "eval"
    scores, sr_dir, heat_dir, report_dir = RUN / "scores.jsonl", RUN / "sr", RUN / "heatmaps", RUN / "report"
    # A demo run starts afresh: `mmdx train` refuses an --out that already holds a run, and `mmdx
    # score` resumes its output, so it would skip every study the previous run's model scored.
    for stale in (train_dir, sr_dir, heat_dir, report_dir):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in RUN.glob(scores.name + "*"):  # results, errors and skipped files
        stale.unlink()
    times: dict[str, float] = {}
    t_all = time.perf_counter()

    times["phantom"] = step("synthetic phantom studies (SYNTHETIC, not patient data)",
                            "phantom", "--out", str(data), "--studies", "400", "--seed", "0", "--size", "128")
    times["train"] = step("fine-tune the phantom-tiny model", "train", "--config", "configs/phantom-tiny.yaml",
                          "--set", f"data.manifest={data / 'manifest.jsonl'}", "--set", f"data.cache_dir={RUN / 'cache'}",
                          "--out", str(train_dir))
    model = train_dir / "best"
    times["evaluate"] = step("evaluate on the held-out test split", "evaluate", "--model", str(model),
                             "--manifest", str(data / "manifest.jsonl"), "--out", str(eval_dir))
    test_dicoms = sorted((data / "dicom").glob("*"))[:8]
    times["score"] = step("batch-score a few studies; DICOM SR per study", "score", "--model", str(model),
                          "--input", *map(str, test_dicoms), "--out", str(scores),
                          "--sr-dir", str(sr_dir), "--heatmaps", str(heat_dir))
    times["report"] = step("HTML report of the scores and the evaluation (opens from disk)", "report",
                           "--results", str(scores), "--images", str(heat_dir), "--eval", str(eval_dir),
                           "--out", str(report_dir))
    total = time.perf_counter() - t_all

    summary = json.loads((eval_dir / "metrics.json").read_text())["summary"]
    rows = [("macro AUROC", summary.get("macro_auroc")), ("pointing game", summary.get("pointing_game")),
            ("BLEU-4", summary.get("bleu4")), ("clinical F1 (findings)", summary.get("clinical_f1"))]
    print("\n== Summary (phantom test split)")
    print(f"{'metric':<24}{'value':>10}")
    for name, value in rows:
        print(f"{name:<24}{value:>10.3f}" if isinstance(value, (int, float)) else f"{name:<24}{'n/a':>10}")
    for name, seconds in times.items():
        print(f"{'time ' + name:<24}{seconds:>9.0f}s")
    print(f"{'time total':<24}{total:>9.0f}s")
    print(f"\nmodel: {model}\nmetrics and pictures: {eval_dir}\nscores: {scores}\n"
          f"structured reports: {sr_dir}\nheat maps: {heat_dir}\nTensorBoard: tensorboard --logdir {train_dir}\n"
          f"HTML report: {report_dir / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
