"""mmdx info: print a saved model's card (README.md): data, recipe, metrics, limitations."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "info", help="print a model directory's model card",
                    examples=("mmdx info --model runs/tiny/train/best",))
    s.add_argument("--model", required=True, help="model directory (save_pretrained output)")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.models.model_card import read_card

    print(read_card(a.model), end="")
    return 0
