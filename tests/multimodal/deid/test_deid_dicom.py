"""DICOM de-identification: profile attributes gone, pixels identical, UIDs remapped consistently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from multimodal.cli import main
from multimodal.deid.dicom import deidentify_folder
from preprocessing.errors import UnsupportedImageError

# Identifying values written into the test files; none may survive anywhere in the output bytes.
PHI = {
    "PatientName": "Doe^Jane", "PatientID": "MRN0042977", "PatientBirthDate": "19610317",
    "OtherPatientIDs": "OTHER55512", "InstitutionName": "Saint Elsewhere Hospital",
    "InstitutionAddress": "12 Harbour Road", "ReferringPhysicianName": "Smith^John",
    "PerformingPhysicianName": "Quinn^Harriet", "OperatorsName": "Tech^Tom", "AccessionNumber": "ACC7731199",
    "StudyID": "STU8812", "StationName": "XRAYROOM7", "DeviceSerialNumber": "SN-99887766",
    "PatientAddress": "7 Elm Street Springfield", "StudyDescription": "CHEST Doe follow-up",
    "ImageComments": "patient Jane Doe, bed 4", "PatientAge": "063Y", "PatientWeight": "71.5",
}
PROFILE_REMOVED = ["OtherPatientIDs", "InstitutionAddress", "PerformingPhysicianName", "OperatorsName",
                   "DeviceSerialNumber", "PatientAddress", "StudyDescription", "ImageComments", "PatientAge",
                   "PatientWeight", "InstitutionName", "StationName"]


def _write_study(folder: Path, burned_in: str = "NO") -> list[Path]:
    study, series = generate_uid(), generate_uid()
    sops = [generate_uid(), generate_uid()]
    paths = []
    for i, sop in enumerate(sops):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1.1", sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, generate_uid()
        ds.Modality, ds.ViewPosition, ds.PatientSex = "DX", ("PA", "LL")[i], "F"
        for keyword, value in PHI.items():
            setattr(ds, keyword, value)
        ds.StudyDate, ds.ContentDate, ds.StudyTime = "20240315", "20240315", "101500"
        ds.BurnedInAnnotation = burned_in
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = ds.SOPClassUID, sops[1 - i]
        ds.ReferencedImageSequence = [ref]
        ds.private_block(0x0011, "ACME PRIVATE", create=True).add_new(0x01, "LO", "secret Jane Doe note")
        ds.add_new(0x60003000, "OW", bytes(128))  # overlay data: may carry burned-in text
        ds.Rows = ds.Columns = 32
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = np.random.default_rng(i).integers(0, 4096, (32, 32), dtype=np.uint16).tobytes()
        paths.append(folder / f"img{i}.dcm")
        folder.mkdir(parents=True, exist_ok=True)
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


def _outputs(out: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted(out.rglob("*.dcm"))]


def test_profile_attributes_are_gone_and_pixels_identical(tmp_path):
    sources = [pydicom.dcmread(p) for p in _write_study(tmp_path / "in")]
    summary = deidentify_folder(tmp_path / "in", tmp_path / "out", salt="s3cret")

    assert summary["written"] == 2
    for path in (tmp_path / "out").rglob("*.dcm"):
        raw = path.read_bytes()
        for value in [*PHI.values(), "Jane", "Doe", "Smith", "ACME", *(str(s.SOPInstanceUID) for s in sources),
                      str(sources[0].StudyInstanceUID), "20240315"]:
            assert value.encode() not in raw, f"{value!r} survived in {path.name}"
    by_pixels = {ds.PixelData: ds for ds in _outputs(tmp_path / "out")}
    for src in sources:
        ds = by_pixels[src.PixelData]  # identical pixel data for every source image
        assert all(keyword not in ds for keyword in PROFILE_REMOVED)
        assert not any(element.tag.is_private for element in ds) and 0x60003000 not in ds
        assert ds.PatientIdentityRemoved == "YES"
        assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100"]
        assert ds.StudyDate == "" and ds.PatientSex == ""
        assert ds.ViewPosition == src.ViewPosition and ds.Modality == "DX"


def test_uids_remap_consistently_within_and_across_runs(tmp_path):
    sources = [pydicom.dcmread(p) for p in _write_study(tmp_path / "in")]
    for run in ("a", "b"):
        deidentify_folder(tmp_path / "in", tmp_path / run, salt="same-salt")
    deidentify_folder(tmp_path / "in", tmp_path / "c", salt="other-salt")

    names = {run: sorted(p.relative_to(tmp_path / run).as_posix() for p in (tmp_path / run).rglob("*.dcm"))
             for run in "abc"}
    assert names["a"] == names["b"] and set(names["a"]).isdisjoint(names["c"])
    a = _outputs(tmp_path / "a")
    assert len({str(ds.StudyInstanceUID) for ds in a}) == 1
    new_sops = {str(ds.SOPInstanceUID) for ds in a}
    # Each image references the other: the reference follows the remapped SOP Instance UID.
    assert {str(ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID) for ds in a} == new_sops
    assert new_sops.isdisjoint(str(s.SOPInstanceUID) for s in sources)
    assert len({str(ds.PatientID) for ds in a}) == 1 and str(a[0].PatientID) != PHI["PatientID"]


def test_dates_shifted_per_patient_when_asked(tmp_path):
    _write_study(tmp_path / "in")
    deidentify_folder(tmp_path / "in", tmp_path / "out", salt="s", keep_dates_shifted=True)
    outputs = _outputs(tmp_path / "out")
    shifted = {str(ds.StudyDate) for ds in outputs}
    assert len(shifted) == 1 and shifted != {"20240315"} and shifted.pop() < "20240115"
    assert [c.CodeValue for c in outputs[0].DeidentificationMethodCodeSequence] == ["113100", "113107"]
    assert outputs[0].LongitudinalTemporalInformationModified == "MODIFIED"


def test_burned_in_annotation_is_refused_unless_allowed(tmp_path):
    _write_study(tmp_path / "in", burned_in="YES")
    with pytest.raises(UnsupportedImageError, match="BurnedInAnnotation"):
        deidentify_folder(tmp_path / "in", tmp_path / "out")
    assert not (tmp_path / "out").exists()

    assert main(["deid", "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--allow-burned-in"]) == 0
    assert {ds.PatientIdentityRemoved for ds in _outputs(tmp_path / "out")} == {"NO"}
