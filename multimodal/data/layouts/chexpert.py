"""CheXpert as released: ``train.csv`` / ``valid.csv`` beside ``train/`` and ``valid/`` (the paths in the
CSVs start with the release folder's name, e.g. ``CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg``).

One study per ``patientNNNNN/studyN`` folder, its views in order (frontal first), labels over
CheXpert's 14 observations: 1 / 0 / -1 (uncertain) / blank (not mentioned → unknown). The
uncertain labels follow ``uncertain`` (the CheXpert paper's policies, the one implementation
:func:`preprocessing.vocab.uncertain_value` that ``mmdx label --uncertain`` and every manifest writer share):
``keep`` (-1, the model's ``uncertain_policy`` decides), ``U-Ignore`` (unknown), ``U-Ones`` (1), ``U-Zeros`` (0). Split:
``valid.csv`` (radiologist-labelled) is test; ``train.csv`` is train/val by patient hash (85/15).
"""

from __future__ import annotations

from pathlib import Path

from preprocessing.errors import ConfigError
from preprocessing.vocab import CHEXPERT_OBSERVATIONS, uncertain_value

from .common import Collector, age_years, find_table, read_table, sex_code, train_val_by_patient

COLUMNS = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_OBSERVATIONS)


def manifest_from_chexpert(root: str | Path, out: str | Path | None = None, uncertain: str | None = "keep") -> Path:
    """A manifest from a CheXpert release folder (the one holding ``train.csv`` and ``valid.csv``)."""
    root = Path(root)
    out = Path(out) if out is not None else root / "manifest.jsonl"
    replacement = checked_uncertain(uncertain)
    found = Collector()
    for table, split in (("valid.csv", "test"), ("train.csv", None)):
        path = find_table(root, table)
        for line, row in read_table(path, COLUMNS):
            parts = Path(row["Path"].strip()).parts
            if len(parts) < 3 or not parts[-3].startswith("patient"):
                found.bad(path, line, "Path", f"expected .../patientN/studyN/viewN_*.jpg, got {row['Path']!r}")
                continue
            try:
                labels = {o: _label(row[o], replacement) for o in CHEXPERT_OBSERVATIONS}
            except ValueError as err:
                found.bad(path, line, None, str(err))
                continue
            patient, study_dir = parts[-3], parts[-2]
            study = found.study(f"{patient}/{study_dir}", patient_id=patient, labels=labels,
                                split=split or train_val_by_patient(patient),
                                meta={"sex": sex_code(row["Sex"]), "age": age_years(row["Age"])})
            study["images"].append(str(_image_path(root, parts)))
            frontal = row["Frontal/Lateral"].strip() == "Frontal"
            study["views"].append(row["AP/PA"].strip() if frontal else "LATERAL")
    return found.write(out)


def checked_uncertain(policy: str | None) -> int | None:
    """:func:`preprocessing.vocab.uncertain_value` of ``policy``; a :class:`ConfigError` naming the
    ``uncertain`` option when it is unknown (checked before any file is read)."""
    try:
        return uncertain_value(policy)
    except ValueError as err:
        raise ConfigError("uncertain", str(err)) from err


def _label(cell: str, replacement: int | None) -> int | None:
    cell = cell.strip()
    if not cell:
        return None
    value = int(float(cell))
    if value not in (1, 0, -1):
        raise ValueError(f"label {cell!r} is not 1, 0, -1 or blank")
    return replacement if value == -1 else value


def _image_path(root: Path, parts: tuple[str, ...]) -> Path:
    """The CSV's path, which starts with the release folder's own name, under ``root``."""
    prefixed = parts[0] == root.name or not (root / parts[0]).exists()
    return root.joinpath(*parts[1:]) if prefixed else root.joinpath(*parts)
