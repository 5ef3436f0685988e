"""mmdx keygen: make (or rotate) a key file for encryption at rest."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, print_json


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "keygen", help="make a key file for encryption at rest (AES-256-GCM)",
                    examples=("mmdx keygen --out /secure/mmdx.key",
                              "mmdx keygen --out /secure/mmdx.key --rotate",
                              "MMDX_KEY_FILE=/secure/mmdx.key mmdx score --model m --input in/ --out r.jsonl"))
    s.add_argument("--out", required=True, help="key file to write (mode 0600; never overwritten)")
    s.add_argument("--rotate", action="store_true",
                   help="add a new current key in front of an existing file's keys, which still decrypt "
                        "older files (default: make a new file)")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from preprocessing.crypto import generate_key_file

    print_json({"key_file": a.out, "key_id": generate_key_file(a.out, rotate=a.rotate)})
    return 0
