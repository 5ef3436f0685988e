"""mmdx decrypt: restore the clear content of a file mmdx encrypted."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, print_json


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "decrypt", help="decrypt a file mmdx encrypted (cache entry, spool, SR, results)",
                    examples=("mmdx --key-file mmdx.key decrypt sr/study1.dcm --out study1.dcm",
                              "MMDX_KEY_FILE=mmdx.key mmdx decrypt results.jsonl --out results.clear.jsonl"))
    s.add_argument("file", help="the encrypted file")
    s.add_argument("--out", required=True, help="where to write the clear content (mode 0600)")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.security import audit
    from preprocessing.crypto import DecryptionError, Keyring, decrypt_file

    keyring = Keyring.from_env()
    if keyring is None:
        raise DecryptionError(a.file, "no key: pass mmdx --key-file KEY or set MMDX_KEY_FILE")
    result = decrypt_file(a.file, a.out, keyring)
    audit.record("export", detail={"decrypted": result["format"]})
    print_json(result)
    return 0
