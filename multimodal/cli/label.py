"""mmdx label: report text -> observation labels."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "label", help="label report text: observations with negation, uncertainty, zones",
                    examples=("mmdx label --input reports.jsonl --out labels.jsonl",
                              "mmdx label --input reports.jsonl --out labels.jsonl --versus uncertain"))
    s.add_argument("--input", required=True, help="JSONL file, one report per line")
    s.add_argument("--out", required=True, help="JSONL file written, one line per input line")
    s.add_argument("--fields", default="findings,impression",
                   help="comma-separated text fields that are labelled (default: findings,impression)")
    s.add_argument("--id-field", default=None, help="input field copied as the id (default: id, uid or study_id)")
    s.add_argument("--observations", default=None, help="observation set (default: chexpert)")
    s.add_argument("--versus", default=None, choices=["both", "uncertain"],
                   help='"X versus Y": both sides as stated (IU coders) or both uncertain (CheXpert) '
                        "(default: both)")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from preprocessing.report_labeler import label_jsonl

    n = label_jsonl(a.input, a.out, fields=a.fields.split(","),
                    **given(a, id_field="id_field", observations="observations", versus="versus"))
    print(f"labelled {n} reports -> {a.out}")
    return 0
