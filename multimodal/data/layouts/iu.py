"""IU X-ray (Open-I) as released: the reports ``ecgen-radiology/*.xml`` (from ``NLMCXR_reports.tgz``)
and the images ``NLMCXR_png/*.png`` (from ``NLMCXR_png.tgz``). The project's own text-only
``reports_dev.jsonl`` keeps working (:func:`multimodal.data.manifest_writers.manifest_from_iu`).

One study per report (``CXR<n>``): the images its ``parentImage`` elements name, ``text`` = the
indication, ``findings``, the impression and MeSH terms in meta, labels (CheXpert's 14) and zones
from the project's report labeler on findings + impression. IU has no patient ids: a report is its
own patient; split 70/15/15 by hash.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from multimodal.data.manifest_writers import IU_REPORTS, manifest_from_iu
from preprocessing.report_labeler import join_fields, label_report
from preprocessing.vocab import apply_uncertain_policy

from .chexpert import checked_uncertain
from .common import Collector, index_images


def manifest_from_iu_release(root: str | Path, out: str | Path | None = None, convention: str = "chexpert",
                             uncertain: str | None = "keep") -> Path:
    """A manifest from the Open-I folder holding ``ecgen-radiology/`` and ``NLMCXR_png/`` (or the
    project's ``reports_dev.jsonl``); ``convention`` and ``uncertain`` as in ``mmdx label``, whose labels
    these equal."""
    root = Path(root)
    checked_uncertain(uncertain)
    if root.suffix == ".jsonl" or (root / IU_REPORTS).is_file():
        return manifest_from_iu(root, out=out, convention=convention, uncertain=uncertain)
    out = Path(out) if out is not None else root / "manifest.jsonl"
    images = index_images(root, (".png",))
    found = Collector()
    reports = sorted(root.rglob("*.xml"), key=lambda p: (len(p.stem), p.stem))
    for path in reports:
        try:
            tree = ET.parse(path).getroot()
        except ET.ParseError as err:
            found.bad(path, err.position[0], None, f"not valid XML: {err}")
            continue
        uid = tree.find("uId")
        if uid is None or not uid.get("id"):
            found.bad(path, 0, "uId", "missing")
            continue
        sections = {(e.get("Label") or "").upper(): (e.text or "").strip() for e in tree.iter("AbstractText")}
        findings, impression = sections.get("FINDINGS", ""), sections.get("IMPRESSION", "")
        labels = label_report(join_fields(sections, ("FINDINGS", "IMPRESSION")), "chexpert", convention)
        study = found.study(uid.get("id"), patient_id=uid.get("id"), text=sections.get("INDICATION", ""),
                            findings=findings, labels=apply_uncertain_policy(labels.values, uncertain),
                            regions={k: v for k, v in labels.zones.items() if v},
                            meta={"impression": impression, "comparison": sections.get("COMPARISON", ""),
                                  "mesh": [e.text for e in tree.iter("major") if e.text]})
        for image in tree.iter("parentImage"):
            name = f"{image.get('id')}.png"
            if name not in images:
                found.bad(path, 0, "parentImage", f"image {name} not found under {root}")
                continue
            study["images"].append(str(images[name]))
            study["views"].append("")
    return found.write(out)
