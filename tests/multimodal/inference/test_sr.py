"""DICOM Structured Reports: valid per dciodvfy, readable by pydicom and highdicom, same study."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace

import highdicom as hd
import numpy as np
import pydicom
import pytest
from highdicom.sr.utils import find_content_items

from multimodal.inference.predictor import Predictor
from multimodal.inference.sr import coded, to_structured_report
from preprocessing.codes import (
    ABSENT, MEAN, NO_UNITS, OBSERVATION_CODES, PRESENT, PRIVATE_SCHEME, PROBABILITY, STANDARD_DEVIATION,
    observation_code, zone_site,
)


@pytest.fixture(scope="module")
def predictor(tiny_model_dir) -> Predictor:
    return Predictor.from_pretrained(tiny_model_dir, device="cpu")


def _content(items):
    for item in items:
        yield item
        yield from _content(item.get("ContentSequence", []))


def test_structured_report_round_trips_and_references_the_source(predictor, phantom_dir, tmp_path):
    source = pydicom.dcmread(sorted((phantom_dir / "dicom").rglob("PA.dcm"))[0])
    result = predictor.predict(source, text="Cough.", generate=True)
    assert result.observations["Cardiomegaly"].positive and not result.observations["Pneumothorax"].positive
    peak = result.observations["Cardiomegaly"].peak
    assert 0 <= peak.x <= source.Columns and 0 <= peak.y <= source.Rows

    path = tmp_path / "sr.dcm"
    to_structured_report(result, [source]).save_as(path, enforce_file_format=True)

    ds = pydicom.dcmread(path)
    assert ds.StudyInstanceUID == source.StudyInstanceUID and ds.PatientID == source.PatientID
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID and ds.SOPInstanceUID != source.SOPInstanceUID
    items = list(_content(ds.ContentSequence))
    numbers = [float(i.MeasuredValueSequence[0].NumericValue) for i in items
               if i.ValueType == "NUM" and i.ConceptNameCodeSequence[0].CodeMeaning == "Probability"]
    expected = [round(o.probability, 6) for o in result.observations.values()]
    assert np.allclose(sorted(numbers), sorted(expected), atol=1e-5)
    texts = {i.ConceptNameCodeSequence[0].CodeMeaning: i.TextValue for i in items if i.ValueType == "TEXT"}
    assert texts["Algorithm Name"] == "mmdx-test" and texts["Algorithm Version"] == "0.0.1"
    assert texts["Finding"] == result.findings
    regions = [i for i in items if i.ValueType == "SCOORD"]
    assert {r.GraphicType for r in regions} == {"POINT", "POLYLINE"}
    refs = {r.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID for r in regions}
    assert refs == {source.SOPInstanceUID}

    sr = hd.sr.srread(path)
    assert isinstance(sr, hd.sr.ComprehensiveSR)
    groups = hd.sr.ComprehensiveSR.from_dataset(ds).content.get_planar_roi_measurement_groups()
    assert groups and all(g.roi is not None for g in groups)


def test_the_same_study_and_model_give_the_same_sr_uids(predictor, phantom_dir):
    """A resent SR (retry after a crash, a rerun) is the same instance, which a PACS stores once."""
    sources = [pydicom.dcmread(p) for p in sorted((phantom_dir / "dicom").rglob("PA.dcm"))[:2]]
    result = predictor.predict(sources[0], text="Cough.")
    first, again = to_structured_report(result, [sources[0]]), to_structured_report(result, [sources[0]])
    assert (first.SOPInstanceUID, first.SeriesInstanceUID) == (again.SOPInstanceUID, again.SeriesInstanceUID)
    other_model = replace(result, model={**result.model, "config_hash": "another"})
    assert to_structured_report(other_model, [sources[0]]).SOPInstanceUID != first.SOPInstanceUID
    other_study = predictor.predict(sources[1], text="Cough.")
    assert to_structured_report(other_study, [sources[1]]).SOPInstanceUID != first.SOPInstanceUID


def _every_coded_observation(result):
    """The result relabelled so that it carries one observation per distinct code of the code table
    (the table's private codes too), cycling through its real observations' values."""
    names = list({observation_code(name): name for name in reversed(OBSERVATION_CODES)}.values())
    values = list(result.observations.values())
    return replace(result, observations={name: values[i % len(values)] for i, name in enumerate(names)})


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) is not installed")
def test_structured_report_passes_dciodvfy(predictor, phantom_dir, tmp_path):
    paths = sorted((phantom_dir / "dicom").rglob("*.dcm"))
    two_view = next(p.parent for p in paths if p.name == "LL.dcm")
    sources = [pydicom.dcmread(two_view / "PA.dcm"), pydicom.dcmread(two_view / "LL.dcm")]
    result = predictor.predict(sources)
    for name, study in [("sr.dcm", result), ("every-code.dcm", _every_coded_observation(result))]:
        path = tmp_path / name
        to_structured_report(study, sources).save_as(path, enforce_file_format=True)
        report = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True)
        errors = [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")]
        assert errors == [], name


def test_highdicom_finds_every_finding_of_the_code_table_by_its_code(predictor, phantom_dir, tmp_path):
    source = pydicom.dcmread(sorted((phantom_dir / "dicom").rglob("PA.dcm"))[0])
    result = _every_coded_observation(predictor.predict(source))
    assert len(result.observations) == len(set(OBSERVATION_CODES.values())) and result.positives
    path = tmp_path / "sr.dcm"
    to_structured_report(result, [source]).save_as(path, enforce_file_format=True)
    ds = pydicom.dcmread(path)
    report = hd.sr.ComprehensiveSR.from_dataset(ds).content
    for name, obs in result.observations.items():
        code = observation_code(name)
        (group,) = report.get_image_measurement_groups(finding_type=coded(code))
        (probability,) = group.get_measurements(name=coded(PROBABILITY))
        assert probability.value == pytest.approx(obs.probability, abs=1e-5)
        assert probability.unit == coded(NO_UNITS)
        (decision,) = group.get_qualitative_evaluations()
        assert decision.value == coded(PRESENT if obs.positive else ABSENT)
    for positive in result.positives:
        zone = result.observations[positive].zones[0]
        site = zone_site(zone)
        found = report.get_planar_roi_measurement_groups(finding_type=coded(observation_code(positive)),
                                                         finding_site=coded(site.location))
        assert found and site.location.scheme == "SCT"
    site = zone_site(result.observations[result.positives[0]].zones[0])
    items = list(_content(ds.ContentSequence))
    if site.laterality is not None:
        assert any(i.ConceptNameCodeSequence[0].CodeValue == "272741003"
                   and i.ConceptCodeSequence[0].CodeValue == site.laterality.value for i in items)
    assert [s.CodingSchemeDesignator for s in ds.CodingSchemeIdentificationSequence] == [PRIVATE_SCHEME]


def test_an_sr_with_only_standard_codes_declares_no_private_scheme(predictor, phantom_dir):
    source = pydicom.dcmread(sorted((phantom_dir / "dicom").rglob("PA.dcm"))[0])
    result = predictor.predict(source)
    standard = [name for name in OBSERVATION_CODES if observation_code(name).scheme != PRIVATE_SCHEME]
    values = list(result.observations.values())
    result = replace(result, observations={name: values[i % len(values)] for i, name in enumerate(standard[:5])})
    assert "CodingSchemeIdentificationSequence" not in to_structured_report(result, [source])


def test_a_label_without_a_standard_code_gets_the_declared_private_scheme(predictor, phantom_dir):
    source = pydicom.dcmread(sorted((phantom_dir / "dicom").rglob("PA.dcm"))[0])
    result = predictor.predict(source)
    result.observations = {"Support Devices": next(iter(result.observations.values()))}
    sr = to_structured_report(result, [source])
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == PRIVATE_SCHEME
    items = list(_content(sr.ContentSequence))
    assert any(i.get("ConceptNameCodeSequence") and i.ConceptNameCodeSequence[0].CodingSchemeDesignator == PRIVATE_SCHEME
               for i in items)


def test_the_uncertainty_and_its_source_round_trip_through_the_sr(tiny_model_dir, predictor, phantom_dir, tmp_path):
    source = pydicom.dcmread(sorted((phantom_dir / "dicom").rglob("PA.dcm"))[0])
    result = Predictor.from_pretrained(tiny_model_dir, device="cpu", mc_dropout=4).predict(source, generate=False)
    path = tmp_path / "sr.dcm"
    to_structured_report(result, [source]).save_as(path, enforce_file_format=True)
    report = hd.sr.ComprehensiveSR.from_dataset(pydicom.dcmread(path)).content
    for name, obs in result.observations.items():
        (group,) = report.get_image_measurement_groups(finding_type=coded(observation_code(name)))
        (probability,) = group.get_measurements(name=coded(PROBABILITY))
        assert probability.derivation == coded(MEAN)
        (deviation,) = find_content_items(probability[0], name=coded(STANDARD_DEVIATION), value_type="NUM")
        assert obs.uncertainty > 0 and deviation.value == pytest.approx(obs.uncertainty, abs=1e-6)
        assert deviation.unit == coded(NO_UNITS)
        (population,) = find_content_items(probability[0],
                                           name=hd.sr.CodedConcept("121405", "DCM", "Population Description"))
        assert population.value == "mc_dropout samples"
    if shutil.which("dciodvfy"):
        check = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True)
        assert [line for line in (check.stdout + check.stderr).splitlines() if line.startswith("Error")] == []
    plain = predictor.predict(source, generate=False)  # one plain pass: no uncertainty, no derivation
    plain_report = hd.sr.ComprehensiveSR.from_dataset(to_structured_report(plain, [source])).content
    (group,) = plain_report.get_image_measurement_groups(finding_type=coded(observation_code(name)))
    (probability,) = group.get_measurements(name=coded(PROBABILITY))
    assert probability.derivation is None
    assert not find_content_items(probability[0], name=coded(STANDARD_DEVIATION))
