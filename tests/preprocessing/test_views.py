"""The view rule: what each header clue says, and which files take the model's slots."""

from __future__ import annotations

import pytest
from pydicom import uid
from pydicom.dataset import Dataset

from preprocessing.errors import ImageReadError
from preprocessing.views import Candidate, ViewInfo, choose_views, view_of


def _header(**tags) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = uid.DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = uid.generate_uid()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def _code(meaning: str) -> list[Dataset]:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "0", "SCT", meaning
    return [item]


@pytest.mark.parametrize(("tags", "label"), [
    ({"ViewPosition": "PA"}, "frontal (PA)"),
    ({"ViewPosition": "AP", "PatientOrientation": ["A", "F"]}, "frontal (AP)"),  # ViewPosition decides first
    ({"ViewPosition": "LL"}, "lateral (LL)"),
    ({"ViewPosition": "LATERAL", "ImageLaterality": "R"}, "lateral (RL)"),
    ({"ViewCodeSequence": _code("postero-anterior")}, "frontal (PA)"),
    ({"ViewCodeSequence": _code("left lateral")}, "lateral (LL)"),
    ({"PatientOrientation": ["L", "F"]}, "frontal"),
    ({"PatientOrientation": ["P", "F"]}, "lateral"),
    ({"SeriesDescription": "Chest AP portable"}, "frontal (AP)"),
    ({"SeriesDescription": "THORAX LAT"}, "lateral"),
    ({"ImageLaterality": "B"}, "frontal"),
    ({}, "unknown"),
])
def test_each_clue_names_the_view(tags, label):
    assert view_of(_header(**tags)).label == label


@pytest.mark.parametrize(("sop_class", "reason"), [
    (uid.BasicTextSRStorage, "not an image (Basic Text SR Storage)"),
    (uid.KeyObjectSelectionDocumentStorage, "not an image (Key Object Selection Document Storage)"),
    (uid.GrayscaleSoftcopyPresentationStateStorage, "not an image (Grayscale Softcopy Presentation State Storage)"),
    (uid.EncapsulatedPDFStorage, "not an image (Encapsulated PDF Storage)"),
])
def test_non_image_objects_are_named(sop_class, reason):
    assert view_of(_header(SOPClassUID=sop_class)).not_image == reason


def _candidate(name: str, view: str | None, sop: str | None = None, not_image: str | None = None) -> Candidate:
    kind = {"PA": "frontal", "AP": "frontal", "LL": "lateral", "RL": "lateral"}.get(view or "", "unknown")
    return Candidate(name, name, ViewInfo(kind, view or "", not_image, sop or name))


def test_a_failed_frontal_falls_back_to_the_next_frontal_and_the_rest_is_skipped():
    candidates = [_candidate("rl", "RL"), _candidate("x", None), _candidate("ap", "AP"), _candidate("pa", "PA"),
                  _candidate("ll", "LL"), _candidate("copy", "LL", sop="ll"),
                  _candidate("sr", None, not_image="not an image (Basic Text SR Storage)")]

    def read(name: str) -> str:
        if name == "pa":
            raise ImageReadError(name, "truncated pixel data")
        return name.upper()

    choice = choose_views(candidates, 2, read)

    assert [(c.name, decoded) for c, decoded in choice.used] == [("ap", "AP"), ("ll", "LL")]
    assert [(c.name, reason) for c, reason in choice.failed] == [("pa", "truncated pixel data")]
    skipped = {c.name: reason for c, reason in choice.skipped}
    assert skipped == {"sr": "not an image (Basic Text SR Storage)", "copy": "same SOPInstanceUID as ll",
                       "rl": "study has 5 images, the model takes 2 (frontal + lateral)",
                       "x": "study has 5 images, the model takes 2 (frontal + lateral)"}


def test_without_a_frontal_the_best_image_goes_first_and_order_breaks_ties():
    choice = choose_views([_candidate("a", None), _candidate("b", None), _candidate("rl", "RL")], 2, str.upper)
    assert [c.name for c, _ in choice.used] == ["rl", "a"]
    assert [c.name for c, _ in choice.skipped] == ["b"]


def test_bare_view_names_of_data_set_tables_follow_the_same_rank():
    from preprocessing.views import position_rank

    names = ["LATERAL", "", "AP", "RL", "PA", "LL", None]
    assert sorted(names, key=position_rank) == ["PA", "AP", "LL", "LATERAL", "RL", "", None]
