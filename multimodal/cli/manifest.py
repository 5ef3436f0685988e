"""mmdx manifest: study manifests (JSONL) from dataset layouts."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command

KINDS = ("dicom", "nih", "iu")


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "manifest", help="write a study manifest (JSONL) from a dataset layout",
                    examples=("mmdx manifest dicom archive/ --out archive.jsonl",
                              "mmdx manifest nih nih_cxr14_bbox/ --out nih.jsonl"))
    s.add_argument("kind", choices=KINDS, help="dataset layout: " + ", ".join(KINDS))
    s.add_argument("path", help="the dataset's root folder or index file")
    s.add_argument("--out", default=None, help="manifest path (default: manifest.jsonl beside the input)")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.data import manifest_writers as mw

    writer = {"dicom": mw.manifest_from_dicom_dir, "nih": mw.manifest_from_nih, "iu": mw.manifest_from_iu}[a.kind]
    print(f"manifest: {writer(a.path, out=a.out)}")
    return 0
