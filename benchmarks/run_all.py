"""Run every benchmark, each in its own process, and collect their JSON in ``benchmarks/results/``.

    python benchmarks/run_all.py --small          # `make bench`: small sizes, results/small/*.json
    python benchmarks/run_all.py                  # full sizes (tens of minutes on 2 cores), results/*.json
    python benchmarks/run_all.py --only train,scaling

Each benchmark is a plain script that prints its table and writes JSON; a separate process per
benchmark keeps their peak-memory readings and thread settings apart and lets one failure leave the
others' results intact. A benchmark whose script is not there yet is reported as missing. The exit
status is non-zero when any benchmark failed or was missing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"

# name -> (script, arguments at full size, arguments at small size); "{out}" is the JSON path.
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "train": ("bench_train.py", ["--out", "{out}"],
              ["--size", "small", "--models", "mmdx,transchex,ved", "--repeats", "2", "--out", "{out}"]),
    "inference": ("bench_inference.py", ["--out", "{out}"], ["--small", "--out", "{out}"]),
    "decode": ("bench_decode.py", ["--out", "{out}"], ["--small", "--out", "{out}"]),
    "scaling": ("bench_scaling.py", ["--out", "{out}"], ["--small", "--out", "{out}"]),
    "labeler": ("bench_labeler.py", ["--json", "{out}"], ["--repeats", "1", "--json", "{out}"]),
    "report": ("bench_report.py", ["--out", "{out}"], ["--small", "--repeats", "3", "--out", "{out}"]),
}


def run_one(name: str, small: bool, results_dir: Path) -> tuple[str, float]:
    """Run benchmark ``name``; return (status, seconds). Its output streams to this terminal."""
    script, full_args, small_args = BENCHMARKS[name]
    path = BENCH_DIR / script
    if not path.is_file():
        return "missing", 0.0
    out = results_dir / f"{name}.json"
    args = [a.replace("{out}", str(out)) for a in (small_args if small else full_args)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    print(f"\n=== {name}: {' '.join([Path(sys.executable).name, str(path.relative_to(BENCH_DIR.parent)), *args])}",
          flush=True)
    start = time.perf_counter()
    code = subprocess.call([sys.executable, str(path), *args], cwd=BENCH_DIR.parent, env=env)
    return ("ok" if code == 0 else f"failed (exit {code})"), time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="small sizes: every benchmark in a few minutes")
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(BENCHMARKS))
    parser.add_argument("--results", type=Path, help="folder for the JSON files (default: results/, --small: results/small/)")
    args = parser.parse_args(argv)
    # Small runs must not overwrite the full-size results that docs/benchmarks.md quotes.
    results = args.results or (RESULTS_DIR / "small" if args.small else RESULTS_DIR)

    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    results.mkdir(parents=True, exist_ok=True)
    statuses = {name: run_one(name, args.small, results) for name in names}
    print("\n| benchmark | status | seconds |\n|---|---|---|")
    for name, (status, seconds) in statuses.items():
        print(f"| {name} | {status} | {seconds:.0f} |")
    print(f"results in {results}")
    return 0 if all(status == "ok" for status, _ in statuses.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
