"""mmdx manifest: study manifests (JSONL) from public releases in their own layout, or DICOM folders."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given
from preprocessing.vocab import UNCERTAIN_CHOICES

DATASETS = ("dicom", "nih", "mimic-cxr", "chexpert", "iu", "vindr-cxr", "rsna-pneumonia", "padchest")


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "manifest", help="write a study manifest (JSONL) from a dataset as released",
                    examples=("mmdx manifest nih ChestX-ray14/ --out nih.jsonl",
                              "mmdx manifest mimic-cxr mimic-cxr-jpg/2.1.0 --reports mimic-cxr-reports "
                              "--out mimic.jsonl",
                              "mmdx manifest chexpert CheXpert-v1.0-small --uncertain U-Ones --out chexpert.jsonl",
                              "mmdx manifest dicom archive/ --out archive.jsonl"))
    s.add_argument("dataset", choices=DATASETS, help="the release's layout (docs/data.md): " + ", ".join(DATASETS))
    s.add_argument("root", help="the release's root folder (nih / iu also take the project's labels.jsonl / "
                                "reports_dev.jsonl)")
    s.add_argument("--out", default=None, help="manifest path (default: ROOT/manifest.jsonl); bad rows go to "
                                               "<out>.errors.jsonl")
    s.add_argument("--reports", default=None, help="mimic-cxr: folder of the extracted reports "
                                                   "(files/pXX/pSUBJECT/sSTUDY.txt; default: ROOT)")
    s.add_argument("--uncertain", default=None, choices=UNCERTAIN_CHOICES,
                   help="chexpert, mimic-cxr, iu: uncertain (-1) labels kept, ignored, read as 1 or as 0; the same "
                        "policy as mmdx label --uncertain (default: keep)")
    s.add_argument("--convention", default=None, choices=["chexpert", "iu"],
                   help="iu: how the report labeler reads the text, as mmdx label --convention (default: chexpert)")
    s.add_argument("--boxed-only", action="store_true", default=None,
                   help="nih: only the images with radiologist boxes (default: all)")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.data.layouts import write_layout_manifest

    path = write_layout_manifest(a.dataset, a.root, out=a.out,
                                 **given(a, reports="reports", uncertain="uncertain", convention="convention",
                                         boxed_only="boxed_only"))
    print(f"manifest: {path}")
    return 0
