"""mmdx deid: de-identify DICOM files."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given, print_json


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "deid", help="de-identify DICOM files (PS3.15 Basic Profile)",
                    examples=("mmdx deid --input raw/ --out clean/ --salt PROJECT-SECRET",))
    s.add_argument("--input", required=True, help="folder of DICOM files (searched recursively)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--salt", default=None, help="project secret for consistent UID replacement (default: random)")
    s.add_argument("--keep-dates-shifted", action="store_true", help="shift dates by a per-patient offset "
                   "instead of removing them")
    s.add_argument("--allow-burned-in", action="store_true", help="also process files flagged BurnedInAnnotation YES")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.deid.dicom import deidentify_folder

    print_json(deidentify_folder(a.input, a.out, keep_dates_shifted=a.keep_dates_shifted,
                                 allow_burned_in=a.allow_burned_in, **given(a, salt="salt")))
    return 0
