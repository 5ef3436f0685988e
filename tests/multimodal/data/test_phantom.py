"""SYNTHETIC phantom studies: valid DICOM in several encodings, determinism, consistent labels/zones/boxes/text."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pydicom
import pytest

from multimodal.data import phantom
from multimodal.data.manifest import load_manifest
from multimodal.data.phantom import write_phantom_dataset
from preprocessing.dicom import read_radiograph
from preprocessing.report_labeler import label_report
from preprocessing.transforms import letterbox_geometry
from preprocessing.vocab import PHANTOM_OBSERVATIONS, ZONE_BOXES


def test_same_seed_writes_identical_files_and_another_seed_does_not(tmp_path):
    first = write_phantom_dataset(tmp_path / "a", studies=4, seed=5, size=48)
    second = write_phantom_dataset(tmp_path / "b", studies=4, seed=5, size=48)
    other = write_phantom_dataset(tmp_path / "c", studies=4, seed=6, size=48)
    files = sorted(p.relative_to(first.parent) for p in first.parent.rglob("*") if p.is_file())
    assert len(files) >= 5
    for rel in files:
        assert (first.parent / rel).read_bytes() == (second.parent / rel).read_bytes(), rel
    assert other.read_bytes() != first.read_bytes()


def test_every_file_is_valid_dicom_marked_synthetic_in_each_encoding(phantom_manifest):
    records = load_manifest(phantom_manifest)
    syntaxes, photometrics, bits = Counter(), Counter(), set()
    study_uids = set()
    for record in records:
        datasets = [pydicom.dcmread(path) for path in record.images]
        assert {ds.StudyInstanceUID for ds in datasets} == {datasets[0].StudyInstanceUID}
        assert len({ds.SOPInstanceUID for ds in datasets}) == len(datasets)
        study_uids.add(datasets[0].StudyInstanceUID)
        for ds, view in zip(datasets, record.views):
            assert "SYNTHETIC PHANTOM" in ds.SeriesDescription and "SYNTHETIC PHANTOM" in ds.ImageComments
            assert ds.Modality in ("CR", "DX") and ds.ViewPosition == view
            assert ds.PatientName.family_name == "PHANTOM" and ds.PatientID == record.patient_id
            assert list(ds.PatientOrientation) == (["L", "F"] if view == "PA" else ["P", "F"])
            assert ds.pixel_array.max() < 2 ** ds.BitsStored
            assert ds.BurnedInAnnotation == "NO" and ds.AnatomicRegionSequence[0].CodeMeaning == "Chest"
            if ds.Modality == "DX":  # the DX IOD's type 1 attributes (dciodvfy -new finds none missing)
                assert ds.ImageLaterality == "U" and ds.PresentationIntentType == "FOR PRESENTATION"
                assert ds.PresentationLUTShape == ("INVERSE" if ds.PhotometricInterpretation == "MONOCHROME1" else "IDENTITY")
                assert "WindowCenter" in ds and ds.RescaleType == "US"
            syntaxes[ds.file_meta.TransferSyntaxUID] += 1
            photometrics[ds.PhotometricInterpretation] += 1
            bits.add(int(ds.BitsStored))
            radiograph = read_radiograph(ds.filename)
            assert radiograph.pixels.shape == (ds.Rows, ds.Columns) and radiograph.flips == (False, False)
    assert len(study_uids) == len(records)
    assert set(syntaxes) == {phantom._encodable(s) for s in phantom.TRANSFER_SYNTAXES}
    assert any(s.is_compressed for s in syntaxes)
    assert set(photometrics) == {"MONOCHROME1", "MONOCHROME2"}
    assert min(bits) >= 10 and max(bits) <= 16 and len(bits) > 1


def test_the_reader_shows_heart_brighter_than_lung_whatever_the_photometric(phantom_manifest):
    for record in load_manifest(phantom_manifest):
        pixels = read_radiograph(record.images[0]).pixels
        rows, cols = pixels.shape
        square = letterbox_geometry((rows, cols), rows)
        lung_x = int(0.22 * rows - square.pad_x)  # the right lung, mid zone, on the display image
        heart_x = int(0.55 * rows - square.pad_x)
        lung = pixels[int(0.40 * rows):int(0.48 * rows), lung_x:lung_x + 4].mean()
        heart = pixels[int(0.68 * rows):int(0.74 * rows), heart_x:heart_x + 4].mean()
        assert heart > lung + 0.15, record.study_id


def test_planted_findings_have_known_labels_zones_and_boxes_inside_their_zone(phantom_manifest):
    records = load_manifest(phantom_manifest)
    assert sum(sum(r.labels.values()) for r in records) > 0
    for record in records:
        assert set(record.labels) == set(PHANTOM_OBSERVATIONS)
        positives = {o for o, v in record.labels.items() if v == 1}
        assert set(record.regions) == positives == {b.label for b in record.boxes}
        rows, cols = read_radiograph(record.images[0]).pixels.shape
        geometry = letterbox_geometry((rows, cols), 256)
        for box in record.boxes:
            x, y, w, h = box.xywh
            assert 0 <= x and x + w <= cols and 0 <= y and y + h <= rows
            nx, ny, nw, nh = geometry.map_boxes([box.xywh], normalized=True)[0]
            x0, y0, x1, y1 = ZONE_BOXES[record.regions[box.label][0]]
            assert x0 <= nx + nw / 2 <= x1 and y0 <= ny + nh / 2 <= y1, (record.study_id, box)


def test_the_report_labeler_reads_the_findings_back_to_the_planted_labels_and_zones(phantom_manifest):
    for record in load_manifest(phantom_manifest):
        read = label_report(record.findings, "phantom")
        assert read.values == record.labels, record.findings
        assert {o: z for o, z in read.zones.items() if z} == record.regions, record.findings


def test_splits_are_70_15_15(phantom_manifest):
    counts = Counter(r.split for r in load_manifest(phantom_manifest))
    assert counts == {"train": 8, "val": 2, "test": 2}


def test_the_indication_says_little_about_the_findings():
    """Across many draws, no indication is a strong clue: P(finding | its hint) stays far below 1."""
    rng = np.random.default_rng(0)
    hint_positive, hint_total = Counter(), Counter()
    for _ in range(4000):
        present = {o: bool(rng.random() < phantom.PREVALENCE) for o in PHANTOM_OBSERVATIONS}
        text = phantom._indication(rng, present, 60, "F")
        for observation, hint in phantom.HINTS.items():
            if hint in text:
                hint_total[observation] += 1
                hint_positive[observation] += present[observation]
    for observation in PHANTOM_OBSERVATIONS:
        assert hint_total[observation] > 50
        assert hint_positive[observation] / hint_total[observation] < 0.65


@pytest.mark.parametrize("studies, size", [(0, 64), (4, 16)])
def test_nonsense_sizes_are_refused(tmp_path, studies, size):
    with pytest.raises(ValueError, match="studies"):
        write_phantom_dataset(tmp_path, studies=studies, size=size)
