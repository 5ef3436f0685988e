"""mmdx label: report text -> observation labels (rules, learned labeler, or both)."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given
from preprocessing.vocab import UNCERTAIN_CHOICES


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "label", help="label report text: observations with negation, uncertainty, zones",
                    examples=("mmdx label --input reports.jsonl --out labels.jsonl",
                              "mmdx label --input reports.jsonl --out labels.jsonl --convention iu",
                              "mmdx label --input reports.jsonl --out labels.jsonl --method ensemble --model runs/labeler",
                              "mmdx label --input reports.jsonl --out labels.jsonl --uncertain U-Ones"))
    s.add_argument("--input", required=True, help="JSONL file, one report per line")
    s.add_argument("--out", required=True, help="JSONL file written, one line per input line")
    s.add_argument("--fields", default="findings,impression",
                   help="comma-separated text fields that are labelled (default: findings,impression)")
    s.add_argument("--id-field", default=None, help="input field copied as the id (default: id, uid or study_id)")
    s.add_argument("--method", default=None, choices=["rules", "bert", "ensemble"],
                   help="rules, the learned labeler (--model) or the rules corrected by it (default: rules)")
    s.add_argument("--model", default=None, help="learned labeler directory (mmdx label-train output); "
                                                  "needed by --method bert|ensemble (default: none)")
    s.add_argument("--convention", default=None, choices=["chexpert", "iu"],
                   help="how the rules read the text: CheXpert's or the IU coders' (default: chexpert)")
    s.add_argument("--observations", default=None, help="observation set of the rules (default: chexpert)")
    s.add_argument("--uncertain", default=None, choices=UNCERTAIN_CHOICES,
                   help="uncertain (-1) labels kept, ignored (null), read as 1 or as 0; the same policy as "
                        "mmdx manifest --uncertain (default: keep)")
    s.add_argument("--batch-size", type=int, default=None, help="reports per batch of the learned labeler (default: 32)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.labeling import label_file

    n = label_file(a.input, a.out, fields=a.fields.split(","), progress=not a.quiet,
                   **given(a, id_field="id_field", method="method", model="model", convention="convention",
                           observations="observations", uncertain="uncertain", batch_size="batch_size"))
    print(f"labelled {n} reports -> {a.out}")
    return 0
