"""Agreement of the report labeler with the manual IU X-ray codes, on the tuning and held-out parts.

    .venv/bin/python benchmarks/eval_labeler.py [--part tune|heldout|all] [--json out.json]
        [--show-errors N [--observation NAME ...]]

Prints per-observation precision / recall / F1 (labeler 1 counted positive; the last column also
counts -1) and zone agreement; writes the numbers as JSON. The split is fixed by
:func:`preprocessing.iu_codes.split_of` (hash of the uid): tune on ``tune`` only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from preprocessing.iu_codes import evaluate_agreement, split_of  # noqa: E402

DEV_FILE = ROOT / "../shared/data/iu_xray_reports/reports_dev.jsonl"


def load_part(path: Path, part: str) -> list[dict]:
    """The dev file's records of one part ("tune", "heldout" or "all")."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows if part == "all" else [r for r in rows if split_of(r["uid"]) == part]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEV_FILE)
    ap.add_argument("--part", nargs="+", default=["tune", "heldout"], choices=["tune", "heldout", "all"])
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/eval_labeler.json")
    ap.add_argument("--show-errors", type=int, default=0, help="print this many disagreements (tune part only)")
    ap.add_argument("--observation", nargs="+", default=None, help="show only these observations' disagreements")
    a = ap.parse_args()
    results = {}
    for part in a.part:
        rows = load_part(a.data, part)
        res = evaluate_agreement(rows)
        lenient = evaluate_agreement(rows, strict=False)
        print(f"\n## {part}: {res['reports']} reports")
        print(f"| observation | support | precision | recall | F1 | F1 (1 or -1) |\n|---|---|---|---|---|---|")
        for obs, t in res["observations"].items():
            print(f"| {obs} | {t['support']} | {t['precision']:.3f} | {t['recall']:.3f} | {t['f1']:.3f} "
                  f"| {lenient['observations'][obs]['f1']:.3f} |")
        print(f"| **macro** | | | | **{res['macro_f1']:.3f}** | {lenient['macro_f1']:.3f} |")
        print(f"zones: exact {res['zone_exact']:.3f}, Jaccard {res['zone_jaccard']:.3f} over {res['zone_pairs']} "
              "true-positive (report, observation) pairs with coded locations")
        if a.show_errors and part == "tune":
            by_uid = {r["uid"]: r for r in rows}
            errors = [e for e in res["errors"] if a.observation is None or e[1] in a.observation]
            for uid, obs, kind in errors[: a.show_errors]:
                r = by_uid[uid]
                print(f"-- {kind} {obs} uid={uid} mesh={r['mesh']}\n   {r['findings']} || {r['impression']}")
        results[part] = {k: v for k, v in res.items() if k != "errors"} | {"macro_f1_uncertain_as_positive": lenient["macro_f1"]}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {a.json}")


if __name__ == "__main__":
    main()
