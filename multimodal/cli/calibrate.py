"""mmdx calibrate: fit a model's probability calibration, thresholds and indeterminate band on a split."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given, print_json


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "calibrate", help="fit calibration, thresholds and the indeterminate band on a split",
                    examples=("mmdx calibrate --model runs/tiny/best --manifest site/manifest.jsonl --out runs/tiny/site",
                              "mmdx calibrate --model runs/ens --manifest data.jsonl --split val --method isotonic"))
    s.add_argument("--model", required=True, help="model or ensemble directory")
    s.add_argument("--manifest", required=True, nargs="+", help="study manifest(s) (JSONL) with labels")
    s.add_argument("--split", default=None, help="manifest split fitted on (default: val)")
    s.add_argument("--out", default=None, help="write a calibrated copy here (default: rewrite --model's config)")
    s.add_argument("--method", default=None, choices=["temperature", "platt", "isotonic"],
                   help="per-observation map (default: temperature)")
    s.add_argument("--error-share", type=float, default=None,
                   help="share of the split's errors on each side of the threshold the indeterminate band "
                        "holds; 0 turns the band off (default: 0.5)")
    s.add_argument("--batch-size", type=int, default=None, help="studies per batch (default: 16)")
    s.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda:0 (default: CUDA when present)")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.calibration.calibrate import calibrate

    print_json(calibrate(a.model, a.manifest, **given(a, split="split", out="out", method="method",
                                                       error_share="error_share", batch_size="batch_size",
                                                       device="device")), indent=2)
    return 0
