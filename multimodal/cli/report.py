"""mmdx report: a static HTML report of scoring results (and an evaluation) that opens from disk."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "report", help="write a static HTML report of results (opens from disk, no server)",
                    examples=("mmdx report --results results.jsonl --out report/",
                              "mmdx report --results results.jsonl --images heatmaps/ --eval runs/tiny/eval --out report/"))
    s.add_argument("--results", required=True, help="mmdx score results (JSONL); <results>.errors.jsonl and "
                   "<results>.skipped.jsonl beside it are read when present")
    s.add_argument("--out", required=True, help="report folder; open <out>/index.html in a browser")
    s.add_argument("--eval", default=None, metavar="EVAL_DIR",
                   help="mmdx evaluate output folder: adds curves and metrics (default: none)")
    s.add_argument("--images", default=None, metavar="HEATMAP_DIR",
                   help="mmdx score --heatmaps folder: heat-map overlays per positive observation (default: none)")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.report import write_report

    print(write_report(a.results, a.out, **given(a, eval_dir="eval", images="images")))
    return 0
