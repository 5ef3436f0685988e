"""mmdx train: fine-tune a model from a YAML config (Accelerate; torchrun / accelerate launch)."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, print_json


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "train", help="fine-tune a model from a YAML config",
                    examples=("mmdx train --config configs/phantom-tiny.yaml --out runs/tiny",
                              "mmdx train --config configs/nih-boxes.yaml --out runs/nih --set optim.lr=3e-4",
                              "accelerate launch --multi_gpu -m multimodal.cli train --config configs/gpu-base.yaml "
                              "--out runs/gpu"))
    s.add_argument("--config", required=True, help="YAML training config (see configs/)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. optim.lr=3e-4 (repeatable; default: none)")
    s.add_argument("--out", required=True, help="run directory (checkpoints, logs, best/ and last/ models)")
    s.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.training.trainer import train

    result = train(a.config, out=a.out, overrides=a.set, resume=a.resume)
    print_json({"steps": result.steps, "best": str(result.best) if result.best else None,
                "last": str(result.last), "best_metrics": result.best_metrics,
                "stopped_early": result.stopped_early}, indent=2)
    return 0
