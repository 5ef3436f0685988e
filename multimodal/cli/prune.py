"""mmdx prune: a smaller model (magnitude or structured pruning, optionally fine-tuned) that loads like any other."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given, print_json


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "prune", help="prune a model's encoder and fusion layers into a new model directory",
                    examples=("mmdx prune --model runs/tiny/best --amount 0.5 --out runs/tiny-pruned50",
                              "mmdx prune --model runs/tiny/best --amount 0.3 --structured --out runs/tiny-small",
                              "mmdx prune --model runs/tiny/best --amount 0.7 --finetune --manifest "
                              "runs/phantom/manifest.jsonl --epochs 3 --set optim.lr=1e-4 --out runs/tiny-pruned70ft"))
    s.add_argument("--model", required=True, help="model directory (save_pretrained output)")
    s.add_argument("--out", required=True, help="directory for the pruned model (loads with from_pretrained)")
    s.add_argument("--amount", type=float, default=None,
                   help="fraction of weights (unstructured) or of feed-forward channels and attention heads "
                        "(structured) removed (default: 0.5)")
    s.add_argument("--structured", action="store_true",
                   help="remove feed-forward channels and attention heads (encoders, fusion, findings decoder) so "
                        "the model really shrinks; LoRA adapters are merged first (default: zero single weights)")
    s.add_argument("--finetune", action="store_true",
                   help="fine-tune the pruned model on --manifest (pruned weights stay zero; the run goes to "
                        "OUT/finetune/)")
    s.add_argument("--manifest", action="append", default=None,
                   help="manifest(s) for --finetune: its train split trains, its val split picks the checkpoint "
                        "(repeatable; default: none)")
    s.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default: 3)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a fine-tuning training-config key, e.g. optim.lr=1e-4 (repeatable; default: none)")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.compression.prune import prune

    if a.finetune != (a.manifest is not None):
        raise SystemExit("mmdx prune: --finetune and --manifest go together")
    print_json(prune(a.model, a.out, structured=a.structured, overrides=a.set,
                     **given(a, amount="amount", manifest="manifest", epochs="epochs")), indent=2)
    return 0
