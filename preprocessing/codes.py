"""Standard codes of the project's observations, lung zones and decisions: one table, read by the
report labeler, the DICOM SR and the HTML report.

Every standard code here is one that DICOM PS3.16 lists, with the same meaning, in the context
group (CID) named by its ``cid``; pydicom's code dictionary (``pydicom.sr.codedict``, generated from
PS3.16) holds them all, and tests/preprocessing/test_codes.py checks each code, meaning and CID
against it, so a typo fails. Observations are coded in SNOMED CT (``SCT``) or the DICOM Controlled
Terminology (``DCM``); zones as SNOMED CT anatomy with a SNOMED CT laterality. A concept with no code
that could be checked offline (not in PS3.16; no RadLex release at hand) gets a code in the private
scheme ``99MMDX`` instead, its name as the meaning and the reason as its ``source``: a code that
cannot be verified is not sent out as a standard one. docs/inference.md lists the table.

Pure definitions (no pydicom, no highdicom): the SR turns a :class:`Code` into its coded concept.
"""

from __future__ import annotations

from dataclasses import dataclass

from preprocessing.vocab import ZONES

PRIVATE_SCHEME = "99MMDX"


@dataclass(frozen=True)
class Code:
    """A coded concept: ``value`` in ``scheme`` (a DICOM coding scheme designator), its ``meaning``,
    where the code was taken from (``source``) and the PS3.16 context group that lists it (``cid``;
    None for a private code or a code no context group lists)."""

    value: str
    scheme: str
    meaning: str
    source: str
    cid: int | None = None

    def __str__(self) -> str:
        return f"{self.scheme}:{self.value}"


_NOT_IN_DICOM = "not in DICOM PS3.16; no RadLex release offline to verify a RID"


def private_code(name: str, why: str = "a label outside the code table") -> Code:
    """The private code of a name with no verified standard code (value: the name without spaces,
    <= 16 chars); ``why`` says why it has none."""
    value = "".join(ch for ch in name.upper() if ch.isalnum())[:16]
    return Code(value, PRIVATE_SCHEME, name, f"private: {why}")


def _sct(value: str, meaning: str, cid: int) -> Code:
    return Code(value, "SCT", meaning, f"DICOM PS3.16 CID {cid}", cid)


def _dcm(value: str, meaning: str, cid: int) -> Code:
    return Code(value, "DCM", meaning, f"DICOM PS3.16 CID {cid}", cid)


# CheXpert and NIH names side by side (each name of preprocessing.vocab.OBSERVATION_SETS). The CID
# is the most fitting of those that list the code (chest ones where there are any).
OBSERVATION_CODES: dict[str, Code] = {
    "No Finding": _dcm("111286", "No abnormality", 6030),
    "Enlarged Cardiomediastinum": private_code(
        "Enlarged Cardiomediastinum", "PS3.16 has only the qualifier Enlarged and the site Mediastinum, "
        "no single concept; no RadLex release offline"),
    # CID 12248 codes Cardiomegaly as 287272002; see docs/inference.md on the conflicting name PS3.16's
    # SNOMED CT table gives that code.
    "Cardiomegaly": _sct("287272002", "Cardiomegaly", 12248),
    "Lung Lesion": _sct("52988006", "Lesion", 7159),
    "Lung Opacity": _dcm("112001", "Opacity", 6104),
    "Edema": _sct("19242006", "Pulmonary edema", 3700),
    "Consolidation": private_code("Consolidation", _NOT_IN_DICOM),
    "Pneumonia": private_code("Pneumonia", _NOT_IN_DICOM),
    "Atelectasis": private_code("Atelectasis", "PS3.16 has only Plate-like atelectasis (a kind of it); "
                                "no RadLex release offline"),
    "Pneumothorax": _sct("36118008", "Pneumothorax", 6105),
    "Pleural Effusion": _sct("60046008", "Pleural effusion", 645),
    "Effusion": _sct("60046008", "Pleural effusion", 645),
    "Pleural Other": private_code("Pleural Other", "CheXpert's catch-all for other pleural findings, not one concept in PS3.16"),
    "Fracture": private_code("Fracture", "PS3.16 has only Fracture of lower limb; no RadLex release offline"),
    "Support Devices": private_code(
        "Support Devices", "PS3.16 lists device kinds (CID 6138) and Non-lesion (also coins, jewelry), "
        "no concept for the class; no RadLex release offline"),
    "Infiltration": _dcm("112121", "Infiltrate", 6104),
    "Mass": _sct("4147007", "Mass", 6104),
    "Nodule": _sct("27925004", "Nodule", 6104),
    "Emphysema": private_code("Emphysema", "PS3.16 has only Mediastinal emphysema; no RadLex release offline"),
    "Fibrosis": _sct("112674009", "Fibrosis", 6336),
    "Pleural_Thickening": private_code("Pleural_Thickening", _NOT_IN_DICOM),
    "Hernia": private_code("Hernia", _NOT_IN_DICOM),
}

RIGHT = _sct("24028007", "Right", 244)
LEFT = _sct("7771000", "Left", 244)
_UPPER = _sct("281392002", "Upper zone of lung", 6171)
_MIDDLE = _sct("281393007", "Middle zone of lung", 6171)
_LOWER = _sct("281394001", "Lower zone of lung", 6171)


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
    "cardiac": ZoneSite(_sct("80891009", "Heart", 4031)),
    "mediastinum": ZoneSite(_sct("72410000", "Mediastinum", 4031)),
}

# Decisions (qualitative evaluation values of an observation).
PRESENT = _sct("52101004", "Present", 240)
ABSENT = _sct("272519000", "Absent", 240)
INDETERMINATE = _sct("82334004", "Indeterminate", 4220)

# Measurement names and units.
PROBABILITY = Code("122157", "DCM", "Probability", "DICOM PS3.16 Annex D (DCM), in no context group")
NO_UNITS = Code("1", "UCUM", "no units", "DICOM PS3.16 CID 7181", 7181)
# The uncertainty of a probability averaged over samples (ensemble members, TTA or MC-dropout
# passes): the probability is their mean (a Derivation, CID 7464), the uncertainty their standard
# deviation (TID 311 Measurement Statistical Properties, CID 226).
MEAN = _sct("373098007", "Mean", 7464)
STANDARD_DEVIATION = _dcm("121414", "Standard deviation of population", 226)


def observation_code(name: str) -> Code:
    """The code of an observation name; a name outside the table (a custom label list) gets a private code."""
    return OBSERVATION_CODES.get(name) or private_code(name)


def zone_site(zone: str) -> ZoneSite:
    """The anatomic site of a zone name of :data:`preprocessing.vocab.ZONES`."""
    if zone not in ZONE_SITES:
        raise KeyError(f"unknown zone {zone!r}; known: {', '.join(ZONES)}")
    return ZONE_SITES[zone]
