"""mmdx label-train: fine-tune the learned (CheXbert-style) report labeler."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "label-train", help="fine-tune the learned report labeler on rule labels, then on hand labels",
                    examples=("mmdx label-train --input reports.jsonl --out runs/labeler-rules",
                              "mmdx label-train --input reports.jsonl --labels hand_labels.jsonl "
                              "--init runs/labeler-rules --out runs/labeler --epochs 3 --lr 2e-5"))
    s.add_argument("--input", required=True, help="JSONL file, one report per line")
    s.add_argument("--out", required=True, help="directory the labeler is saved to")
    s.add_argument("--labels", default=None, help="JSONL of hand labels (id + 'labels' or 'values'); only "
                                                  "those reports are used (default: the rules' labels of every report)")
    s.add_argument("--init", default=None, help="saved labeler to continue from (default: a new one)")
    s.add_argument("--encoder", default=None, help="BERT of a new labeler, a Hugging Face path or id "
                                                   "(default: the packaged MiniLM)")
    s.add_argument("--convention", default=None, choices=["chexpert", "iu"],
                   help="convention of the rules' labels (default: chexpert)")
    s.add_argument("--fields", default="findings,impression",
                   help="comma-separated text fields that are labelled (default: findings,impression)")
    s.add_argument("--id-field", default=None, help="field matching reports and labels (default: id, uid or study_id)")
    s.add_argument("--encoder-layers", type=int, default=None,
                   help="keep the encoder's first N layers in a new labeler (default: all)")
    s.add_argument("--max-length", type=int, default=None, help="tokens per report of a new labeler (default: 128)")
    s.add_argument("--epochs", type=int, default=None, help="passes over the reports (default: 2)")
    s.add_argument("--batch-size", type=int, default=None, help="reports per step (default: 16)")
    s.add_argument("--lr", type=float, default=None, help="peak learning rate of AdamW (default: 5e-5)")
    s.add_argument("--balance", type=float, default=None,
                   help="class weights = frequency ** -balance "
                        "(default: 0.5; 0 plain cross entropy, 1 inverse frequency)")
    s.add_argument("--freeze-layers", type=int, default=None,
                   help="keep the embeddings and the encoder's first N layers fixed (default: 0); their output is "
                        "computed once per report and kept in memory, so a step runs only the layers above")
    s.add_argument("--seed", type=int, default=None, help="shuffling and initialisation seed (default: 0)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.labeling.training import train_from_files

    out = train_from_files(a.input, a.out, fields=a.fields.split(","), progress=not a.quiet,
                           **given(a, labels="labels", id_field="id_field", init="init", encoder="encoder", encoder_layers="encoder_layers",
                                   convention="convention", max_length="max_length", epochs="epochs",
                                   batch_size="batch_size", lr="lr", balance="balance",
                                   freeze_layers="freeze_layers", seed="seed"))
    print(f"saved the labeler -> {out}")
    return 0
