"""mmdx deid: de-identify DICOM files (PS3.15 Table E.1-1 with the options asked for)."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given, print_json

# Flag -> profile option (multimodal.deid.profile.OPTIONS) and what it keeps or cleans.
OPTION_FLAGS = {
    "retain_modified_dates": "shift dates per patient (Retain Longitudinal Temporal Information with Modified "
                             "Dates); default: dates emptied or removed",
    "retain_patient_characteristics": "keep age, sex, size, weight, ethnic group, smoking and pregnancy status; "
                                      "default: removed",
    "retain_device_identity": "keep device serial numbers, station names and detector IDs; default: removed",
    "clean_descriptors": "keep descriptions and comments with names, dates and IDs scrubbed from the text; "
                         "default: removed",
    "clean_structured_content": "keep SR content and acquisition context, cleaned item by item; default: removed",
    "clean_graphics": "keep graphic annotations, their text scrubbed; default: removed (overlays always are)",
}


def _safe_private(text: str) -> tuple[int, str, int]:
    """``GGGG,CREATOR,EE`` (hex group and element byte) -> (group, private creator, element byte)."""
    group, rest = text.split(",", 1)
    creator, element = rest.rsplit(",", 1)
    return int(group, 16), creator, int(element, 16)


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "deid", help="de-identify DICOM files (PS3.15 Basic Profile, Table E.1-1)",
                    examples=("mmdx deid --input raw/ --out clean/ --salt PROJECT-SECRET",
                              "mmdx deid --input raw/ --out clean/ --salt PROJECT-SECRET --retain-modified-dates "
                              "--retain-patient-characteristics --clean-descriptors"))
    s.add_argument("--input", required=True, help="folder of DICOM files (searched recursively)")
    s.add_argument("--out", required=True, help="output folder: out/<new StudyInstanceUID>/<new SOPInstanceUID>.dcm")
    s.add_argument("--salt", default=None, help="project key for consistent UID and ID replacement "
                   "(default: random, so runs cannot be linked)")
    for name, text in OPTION_FLAGS.items():
        s.add_argument("--" + name.replace("_", "-"), action="store_true", default=None, help=text)
    s.add_argument("--retain-safe-private", action="append", type=_safe_private, default=None,
                   metavar="GGGG,CREATOR,EE", help="keep this private attribute (group, private creator, element "
                   "byte, hex; repeatable) as your vendor's conformance statement vouches it safe (default: none, "
                   "every private attribute removed)")
    s.add_argument("--allow-burned-in", action="store_true",
                   help="also process files flagged BurnedInAnnotation YES (without it they are refused)")
    s.add_argument("--log", default=None, help="JSON-lines log, one line per input file "
                   "(default: <out>.deid-log.jsonl beside the output folder)")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.deid.dicom import deidentify_folder

    options = [name for name in OPTION_FLAGS if getattr(a, name)]
    options += ["retain_safe_private"] * bool(a.retain_safe_private)
    summary = deidentify_folder(a.input, a.out, options=options, allow_burned_in=a.allow_burned_in,
                                safe_private=a.retain_safe_private or (), **given(a, salt="salt", log_path="log"))
    print_json(summary)
    return 1 if summary["failed"] else 0
