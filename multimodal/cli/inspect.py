"""mmdx inspect: read files and print one JSON line per file."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given, print_json


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "inspect", help="read DICOM/PNG/JPEG files and print one JSON line per file",
                    examples=("mmdx inspect archive/", "mmdx inspect a.dcm b.png --size 256 --preview-dir previews/"))
    s.add_argument("paths", nargs="+", help="files or folders (searched recursively)")
    s.add_argument("--size", type=int, default=None,
                   help="also preprocess to this square size in pixels (default: read only)")
    s.add_argument("--preview-dir", default=None, help="write a preview PNG per file here (default: none)")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from preprocessing.inspect import inspect_paths

    for row in inspect_paths(a.paths, **given(a, image_size="size", preview_dir="preview_dir")):
        print_json(row)
    return 0
