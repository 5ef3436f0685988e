"""mmdx ensemble: several saved models as one model directory (optionally calibrated as a whole)."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given, print_json


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "ensemble", help="combine saved models into one ensemble model directory",
                    examples=("mmdx ensemble --models runs/a/best runs/b/best runs/c/best --out runs/abc",
                              "mmdx ensemble --models A B --weights 2 1 --out E --manifest data.jsonl --split val"))
    s.add_argument("--models", nargs="+", required=True, help="member model directories (two or more)")
    s.add_argument("--out", required=True, help="new ensemble directory")
    s.add_argument("--weights", nargs="+", type=float, default=None, help="one weight per model (default: equal)")
    s.add_argument("--findings-from", type=int, default=None,
                   help="index of the member that writes the findings text (default: 0; the first)")
    s.add_argument("--manifest", nargs="+", default=None,
                   help="calibrate the ensemble as a whole on this manifest's --split (default: not calibrated)")
    s.add_argument("--split", default=None, help="split the calibration is fitted on (default: val)")
    s.add_argument("--method", default=None, choices=["temperature", "platt", "isotonic"],
                   help="calibration map (default: temperature)")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.calibration.calibrate import calibrate
    from multimodal.models.ensemble import build_ensemble

    out = build_ensemble(a.models, a.out, **given(a, weights="weights", findings_member="findings_from"))
    summary = {"model": str(out)}
    if a.manifest:
        summary = calibrate(out, a.manifest, **given(a, split="split", method="method"))
    print_json(summary, indent=2)
    return 0
