"""mmdx prune: a smaller model (magnitude or structured pruning) that loads like any other."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given, print_json


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "prune", help="prune a model's encoder and fusion layers into a new model directory",
                    examples=("mmdx prune --model runs/tiny/best --amount 0.5 --out runs/tiny-pruned50",
                              "mmdx prune --model runs/tiny/best --amount 0.3 --structured --out runs/tiny-small"))
    s.add_argument("--model", required=True, help="model directory (save_pretrained output)")
    s.add_argument("--out", required=True, help="directory for the pruned model (loads with from_pretrained)")
    s.add_argument("--amount", type=float, default=None,
                   help="fraction of weights (unstructured) or feed-forward channels (structured) removed (default: 0.5)")
    s.add_argument("--structured", action="store_true",
                   help="remove feed-forward channels so the model really shrinks (default: zero single weights)")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.compression.prune import prune

    print_json(prune(a.model, a.out, structured=a.structured, **given(a, amount="amount")), indent=2)
    return 0
