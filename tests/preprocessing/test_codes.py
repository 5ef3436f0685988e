"""The code table: every observation and zone of the vocabulary is coded, standard where one exists."""

from preprocessing.codes import OBSERVATION_CODES, PRIVATE_SCHEME, ZONE_SITES, observation_code, zone_site
from preprocessing.vocab import OBSERVATION_SETS, ZONES


def test_every_named_observation_and_zone_has_an_entry():
    names = {name for names in OBSERVATION_SETS.values() for name in names}
    assert names <= set(OBSERVATION_CODES)
    assert set(ZONE_SITES) == set(ZONES)


def test_private_codes_only_where_no_standard_exists_and_every_code_names_its_source():
    private = {n for n, c in OBSERVATION_CODES.items() if c.scheme == PRIVATE_SCHEME}
    assert private == {"Enlarged Cardiomediastinum", "Pleural Other", "Support Devices", "Pleural_Thickening"}
    assert all(c.source and len(c.value) <= 16 for c in OBSERVATION_CODES.values())
    assert all(s.location.scheme == "SCT" for s in ZONE_SITES.values())


def test_lung_zones_carry_laterality_and_a_custom_label_gets_a_private_code():
    assert zone_site("right_lower").laterality.meaning == "Right"
    assert zone_site("left_upper").laterality.meaning == "Left"
    assert zone_site("cardiac").laterality is None
    assert observation_code("Pleural Effusion") == observation_code("Effusion")  # CheXpert and NIH name one concept
    custom = observation_code("Tube malposition")
    assert (custom.scheme, custom.meaning) == (PRIVATE_SCHEME, "Tube malposition")
