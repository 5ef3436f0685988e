"""Standard codes of the project's observations, lung zones and decisions: one table, read by the
report labeler, the DICOM SR and the HTML report.

Observations and findings are coded in SNOMED CT (``SCT``) where it has the concept, else in the
DICOM Controlled Terminology (``DCM``, PS3.16), else RadLex; zones as SNOMED CT anatomy with a
SNOMED CT laterality. Only concepts no standard covers get a code in the private scheme
``99MMDX`` (their names are the meanings). Each entry names its source: ``pydicom`` means the code
and meaning are in pydicom's code dictionary (``pydicom.sr.codedict``, generated from DICOM PS3.16),
with the context group (CID) that lists it; ``SNOMED CT`` means the concept of the SNOMED CT
International release (not in any DICOM context group). docs/inference.md lists the table.

Pure definitions (no pydicom, no highdicom): the SR turns a :class:`Code` into its coded concept.
"""

from __future__ import annotations

from dataclasses import dataclass

from preprocessing.vocab import ZONES

PRIVATE_SCHEME = "99MMDX"


@dataclass(frozen=True)
class Code:
    """A coded concept: ``value`` in ``scheme`` (a DICOM coding scheme designator), its ``meaning``
    and where the code was taken from (``source``)."""

    value: str
    scheme: str
    meaning: str
    source: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.value}"


def private_code(name: str) -> Code:
    """The private code of a name no standard covers (code value: the name without spaces, <= 16 chars)."""
    value = "".join(ch for ch in name.upper() if ch.isalnum())[:16]
    return Code(value, PRIVATE_SCHEME, name, "private: no standard concept")


def _sct(value: str, meaning: str, cid: str | None = None) -> Code:
    return Code(value, "SCT", meaning, f"pydicom codedict, PS3.16 CID {cid}" if cid else "SNOMED CT International")


def _dcm(value: str, meaning: str, cid: str) -> Code:
    return Code(value, "DCM", meaning, f"pydicom codedict, PS3.16 CID {cid}")


# CheXpert and NIH names side by side (each name of preprocessing.vocab.OBSERVATION_SETS).
OBSERVATION_CODES: dict[str, Code] = {
    "No Finding": _dcm("111286", "No abnormality", "6030"),
    "Enlarged Cardiomediastinum": private_code("Enlarged Cardiomediastinum"),
    "Cardiomegaly": _sct("8186001", "Cardiomegaly"),
    "Lung Lesion": _sct("52988006", "Lesion", "6335"),
    "Lung Opacity": _dcm("112001", "Opacity", "6102"),
    "Edema": _sct("19242006", "Pulmonary edema", "3700"),
    "Consolidation": _sct("95436008", "Lung consolidation"),
    "Pneumonia": _sct("233604007", "Pneumonia"),
    "Atelectasis": _sct("46621007", "Atelectasis"),
    "Pneumothorax": _sct("36118008", "Pneumothorax", "6102"),
    "Pleural Effusion": _sct("60046008", "Pleural effusion", "645"),
    "Effusion": _sct("60046008", "Pleural effusion", "645"),
    "Pleural Other": private_code("Pleural Other"),
    "Fracture": _sct("125605004", "Fracture of bone"),
    "Support Devices": private_code("Support Devices"),
    "Infiltration": _dcm("112121", "Infiltrate", "6102"),
    "Mass": _sct("4147007", "Mass", "6102"),
    "Nodule": _sct("786838002", "Pulmonary nodule"),
    "Emphysema": _sct("87433001", "Pulmonary emphysema"),
    "Fibrosis": _sct("51615001", "Fibrosis of lung"),
    "Pleural_Thickening": private_code("Pleural_Thickening"),
    "Hernia": _sct("84089009", "Hiatal hernia"),
}

RIGHT = _sct("24028007", "Right", "244")
LEFT = _sct("7771000", "Left", "244")
_UPPER = _sct("281392002", "Upper zone of lung", "6126")
_MIDDLE = _sct("281393007", "Middle zone of lung", "6126")
_LOWER = _sct("281394001", "Lower zone of lung", "6126")


@dataclass(frozen=True)
class ZoneSite:
    """A zone as an anatomic location with its laterality (None for midline structures)."""

    location: Code
    laterality: Code | None = None


ZONE_SITES: dict[str, ZoneSite] = {
    "right_upper": ZoneSite(_UPPER, RIGHT),
    "right_middle": ZoneSite(_MIDDLE, RIGHT),
    "right_lower": ZoneSite(_LOWER, RIGHT),
    "left_upper": ZoneSite(_UPPER, LEFT),
    "left_middle": ZoneSite(_MIDDLE, LEFT),
    "left_lower": ZoneSite(_LOWER, LEFT),
    "cardiac": ZoneSite(_sct("80891009", "Heart", "4")),
    "mediastinum": ZoneSite(_sct("72410000", "Mediastinum", "4")),
}

# Decisions (qualitative evaluation values of an observation).
PRESENT = _sct("52101004", "Present", "240")
ABSENT = _sct("272519000", "Absent", "240")
INDETERMINATE = _sct("82334004", "Indeterminate", "4220")

# Measurement names and units.
PROBABILITY = Code("122157", "DCM", "Probability", "pydicom codedict, DICOM PS3.16 (DCM)")
NO_UNITS = Code("1", "UCUM", "no units", "pydicom codedict, PS3.16 CID 7181")
# The uncertainty of a probability averaged over samples (ensemble members, TTA or MC-dropout
# passes): the probability is their mean (a Derivation, CID 7464), the uncertainty their standard
# deviation (TID 311 Measurement Statistical Properties, CID 226).
MEAN = _sct("373098007", "Mean", "7464")
STANDARD_DEVIATION = _dcm("121414", "Standard deviation of population", "226")


def observation_code(name: str) -> Code:
    """The code of an observation name; a name outside the table (a custom label list) gets a private code."""
    return OBSERVATION_CODES.get(name) or private_code(name)


def zone_site(zone: str) -> ZoneSite:
    """The anatomic site of a zone name of :data:`preprocessing.vocab.ZONES`."""
    if zone not in ZONE_SITES:
        raise KeyError(f"unknown zone {zone!r}; known: {', '.join(ZONES)}")
    return ZONE_SITES[zone]
