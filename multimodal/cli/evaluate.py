"""mmdx evaluate: metrics and pictures for a model on a manifest."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given, print_json


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "evaluate", help="metrics and pictures for a model on a manifest",
                    examples=("mmdx evaluate --model runs/tiny/best --manifest data/phantom/manifest.jsonl "
                              "--out runs/tiny/eval",
                              "mmdx evaluate --model runs/ens --manifest runs/nih/manifest.jsonl --out runs/ens-eval "
                              "--no-findings --by sex,age_band,view --tta 4"))
    s.add_argument("--model", required=True, help="model directory (save_pretrained output)")
    s.add_argument("--manifest", required=True, help="study manifest (JSONL)")
    s.add_argument("--out", required=True, help="folder for metrics.json and figures")
    s.add_argument("--split", default=None, help="manifest split evaluated (default: test)")
    s.add_argument("--batch-size", type=int, default=None, help="studies per batch (default: 16)")
    s.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda:0 (default: CUDA when present)")
    s.add_argument("--by", default=None,
                   help="comma-separated manifest fields for the subgroup table, e.g. sex,age_band,view "
                        "(any meta key works; default: none)")
    s.add_argument("--tta", type=int, default=None,
                   help="test-time augmentation passes averaged per study (default: 1; no augmentation)")
    s.add_argument("--mc-dropout", type=int, default=None,
                   help="Monte Carlo dropout passes averaged per study (default: 1; no MC dropout)")
    s.add_argument("--no-findings", action="store_true", help="skip findings generation and its metrics")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.evaluation.evaluate import evaluate

    metrics = evaluate(a.model, a.manifest, out=a.out, generate=not a.no_findings,
                       by=a.by.split(",") if a.by else None,
                       **given(a, split="split", batch_size="batch_size", device="device", tta="tta",
                               mc_dropout="mc_dropout"))
    print_json(metrics.get("summary", {}), indent=2)
    return 0
