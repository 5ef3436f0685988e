"""The code table: every observation and zone of the vocabulary is coded, and every standard code is
one DICOM PS3.16 lists with that meaning in the context group it cites (checked against pydicom's
code dictionary, generated from PS3.16), so a typo or a wrong meaning fails here."""

from pydicom.sr._concepts_dict import concepts

from preprocessing.codes import (
    ABSENT, INDETERMINATE, MEAN, NO_UNITS, OBSERVATION_CODES, PRESENT, PRIVATE_SCHEME, PROBABILITY,
    STANDARD_DEVIATION, ZONE_SITES, Code, observation_code, zone_site,
)
from preprocessing.vocab import OBSERVATION_SETS, ZONES

UNVERIFIED = {"Enlarged Cardiomediastinum", "Consolidation", "Pneumonia", "Atelectasis", "Pleural Other", "Fracture",
              "Support Devices", "Emphysema", "Pleural_Thickening", "Hernia"}


def _standard_codes() -> dict[str, Code]:
    codes = {name: c for name, c in OBSERVATION_CODES.items() if c.scheme != PRIVATE_SCHEME}
    for zone, site in ZONE_SITES.items():
        codes[f"zone {zone}"] = site.location
        if site.laterality is not None:
            codes[f"laterality of {zone}"] = site.laterality
    codes.update({"present": PRESENT, "absent": ABSENT, "indeterminate": INDETERMINATE, "probability": PROBABILITY,
                  "unit": NO_UNITS, "mean": MEAN, "standard deviation": STANDARD_DEVIATION})
    return codes


def _listed_in_dicom(code: Code) -> bool:
    """Whether PS3.16 (as pydicom has it) lists the code with this meaning in the CID it cites (for a
    code no CID lists, anywhere in its scheme). pydicom's data module rather than its Collection API,
    which raises on some context groups (CID 8134 in pydicom 3.0)."""
    return any(meaning == code.meaning and (code.cid is None or code.cid in cids)
               for by_value in concepts.get(code.scheme, {}).values()
               for value, (meaning, cids) in by_value.items() if value == code.value)


def test_every_named_observation_and_zone_has_an_entry():
    names = {name for names in OBSERVATION_SETS.values() for name in names}
    assert names <= set(OBSERVATION_CODES)
    assert set(ZONE_SITES) == set(ZONES)


def test_every_standard_code_is_in_dicom_with_its_meaning_in_the_context_group_it_cites():
    wrong = {label: str(code) for label, code in _standard_codes().items() if not _listed_in_dicom(code)}
    assert wrong == {}
    for code in _standard_codes().values():
        assert code.cid is None or code.source == f"DICOM PS3.16 CID {code.cid}"
    assert [label for label, code in _standard_codes().items() if code.cid is None] == ["probability"]


def test_the_check_catches_a_typo_a_wrong_meaning_and_a_wrong_context_group():
    nodule = OBSERVATION_CODES["Nodule"]
    assert _listed_in_dicom(nodule)
    assert not _listed_in_dicom(Code("27925005", "SCT", "Nodule", nodule.source, nodule.cid))
    assert not _listed_in_dicom(Code(nodule.value, "SCT", "Pulmonary nodule", nodule.source, nodule.cid))
    assert not _listed_in_dicom(Code(nodule.value, "SCT", "Nodule", "DICOM PS3.16 CID 244", 244))


def test_private_codes_only_where_no_verified_code_exists_and_each_says_why():
    private = {n: c for n, c in OBSERVATION_CODES.items() if c.scheme == PRIVATE_SCHEME}
    assert set(private) == UNVERIFIED
    assert all(c.source.startswith("private: ") and len(c.source) > len("private: ") + 10 for c in private.values())
    assert all(c.cid is None and len(c.value) <= 16 for c in private.values())
    assert all(s.location.scheme == "SCT" for s in ZONE_SITES.values())


def test_lung_zones_carry_laterality_and_a_custom_label_gets_a_private_code():
    assert zone_site("right_lower").laterality.meaning == "Right"
    assert zone_site("left_upper").laterality.meaning == "Left"
    assert zone_site("cardiac").laterality is None
    assert observation_code("Pleural Effusion") == observation_code("Effusion")  # CheXpert and NIH name one concept
    custom = observation_code("Tube malposition")
    assert (custom.scheme, custom.meaning) == (PRIVATE_SCHEME, "Tube malposition")
