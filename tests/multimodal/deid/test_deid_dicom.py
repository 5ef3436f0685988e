"""DICOM de-identification against PS3.15 Table E.1-1, and the folder runner's file handling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data.data_manager import DATA_ROOT
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from multimodal.cli import main
from multimodal.deid.dicom import MAX_NESTING, default_log_path, deidentify_folder
from multimodal.deid.profile import BASIC, OPTION_COLUMNS, OPTIONS, REPEATING, TABLE_SOURCE
from preprocessing.errors import UnsupportedImageError

# Identifying values of an ordinary radiograph; none may survive anywhere in the output bytes.
PHI = {
    "PatientName": "Doe^Jane", "PatientID": "MRN0042977", "PatientBirthDate": "19610317",
    "OtherPatientIDs": "OTHER55512", "InstitutionName": "Saint Elsewhere Hospital",
    "InstitutionAddress": "12 Harbour Road", "ReferringPhysicianName": "Smith^John",
    "PerformingPhysicianName": "Quinn^Harriet", "OperatorsName": "Tech^Tom", "AccessionNumber": "ACC7731199",
    "StudyID": "STU8812", "StationName": "XRAYROOM7", "DeviceSerialNumber": "SN-99887766",
    "PatientAddress": "7 Elm Street Springfield", "StudyDescription": "CHEST Doe follow-up",
    "ImageComments": "per Dr. Quinn, bed 4", "PatientAge": "063Y", "PatientWeight": "71.5",
}


def _image(sop: str, study: str, series: str, pixels_seed: int = 0, **attributes) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1.1", sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.Modality, ds.ViewPosition, ds.PatientSex = "DX", "PA", "F"
    ds.Rows = ds.Columns = 32
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.random.default_rng(pixels_seed).integers(0, 4096, (32, 32), dtype=np.uint16).tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _write_study(folder: Path, burned_in: str = "NO") -> list[Path]:
    study, series = generate_uid(), generate_uid()
    sops = [generate_uid(), generate_uid()]
    paths = []
    for i, sop in enumerate(sops):
        ds = _image(sop, study, series, i, ViewPosition=("PA", "LL")[i], BurnedInAnnotation=burned_in,
                    FrameOfReferenceUID=generate_uid(), StudyDate="20240315", ContentDate="20240315",
                    StudyTime="101500", **PHI)
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = ds.SOPClassUID, sops[1 - i]
        ds.ReferencedImageSequence = [ref]
        ds.private_block(0x0011, "ACME PRIVATE", create=True).add_new(0x01, "LO", "secret Jane Doe note")
        ds.add_new(0x60003000, "OW", bytes(128))  # overlay data: may carry burned-in text
        paths.append(_save(ds, folder / f"img{i}.dcm"))
    return paths


def _outputs(out: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted(out.rglob("*.dcm"))]


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in default_log_path(out).read_text().splitlines()]


# --- one file holding every attribute of Table E.1-1, at the top level and nested in a sequence

def _letters(i: int) -> str:
    return "".join("abcdefghijklmnopqrstuvwxyz"[i // 26**k % 26] for k in range(3))


def _marker(tag: int, i: int):
    """A value for ``tag`` that can be found again; text reads like a titled name (what Clean
    Descriptors must catch)."""
    vr = dictionary_VR(tag).split(" or ")[0]
    if vr in ("LO", "SH", "ST", "LT", "UT", "UC"):
        return f"Dr. Mk{_letters(i)}"
    return {"PN": f"Mk{_letters(i)}^Pn", "AE": f"MKAE{_letters(i).upper()}", "CS": f"MK{_letters(i).upper()}",
            "UR": f"http://mk{_letters(i)}", "DA": "19770707", "DT": "19770707111111", "TM": "111111",
            "AS": "077Y", "UI": f"1.2.826.777.{i}", "IS": "77777", "DS": "777.77", "AT": 0x00107777,
            "US": 7777, "SS": 7777, "UL": 7777, "SL": 7777, "UV": 7777, "SV": 7777, "FL": 77.75, "FD": 77.75,
            }.get(vr, b"MKBYTES" + bytes([i % 256]))


def _marked(i0: int = 0) -> tuple[Dataset, dict[int, object]]:
    """A dataset with a marker in every single-tag row of the table (sequences hold one item with a
    marked PatientName)."""
    ds, markers = Dataset(), {}
    for i, tag in enumerate(sorted(BASIC), start=i0):
        if tag >> 16 in (0x0000, 0x0002):  # command and file meta groups: not part of a stored dataset
            continue
        vr = dictionary_VR(tag).split(" or ")[0]
        if vr == "SQ":
            item = Dataset()
            item.PatientName = f"Mksq{_letters(i)}^Pn"
            ds.add_new(tag, "SQ", [item])
            markers[tag] = item.PatientName
        else:
            ds.add_new(tag, vr, _marker(tag, i))
            markers[tag] = ds[tag].value
    return ds, markers


def _write_marked(folder: Path) -> tuple[Path, dict[int, object]]:
    top, markers = _marked()
    nested, _ = _marked()
    ds = _image(generate_uid(), generate_uid(), generate_uid(), BurnedInAnnotation="NO")
    for element in top:
        if element.tag not in ds:
            ds.add(element)
    ds.SOPClassUID, ds.Modality = "1.2.840.10008.5.1.4.1.1.1.1", "DX"
    ds.ViewCodeSequence = [nested]  # a sequence the profile keeps: its item is cleaned like the top level
    for keyword in ("StudyInstanceUID", "SOPInstanceUID", "SeriesInstanceUID"):
        setattr(ds, keyword, generate_uid())
    return _save(ds, folder / "marked.dcm"), markers


def _survivors(ds: Dataset, markers: dict[int, object], where: str = "") -> set[str]:
    found = set()
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                found |= _survivors(item, markers, f"{where}{element.keyword}>")
        if element.tag in markers and element.VR != "SQ" and element.value == markers[element.tag]:
            found.add(where + keyword_for_tag(element.tag))
        if element.tag == tag_for_keyword("PatientName") and str(element.value).startswith("Mksq"):
            found.add(where + "PatientName (in a sequence)")
    return found


def test_no_marker_of_table_e11_survives_the_basic_profile(tmp_path):
    _, markers = _write_marked(tmp_path / "in")
    summary = deidentify_folder(tmp_path / "in", tmp_path / "out", salt="k")
    assert summary["written"] == 1 and len(markers) > 600
    [path] = (tmp_path / "out").rglob("*.dcm")
    ds = pydicom.dcmread(path)
    assert _survivors(ds, markers) == set()
    raw = path.read_bytes()
    for needle in (b"Mk", b"MK", b"19770707", b"1.2.826.777."):
        assert needle not in raw
    assert ds.PatientIdentityRemoved == "YES"
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100"]
    assert "ViewCodeSequence" in ds and ds.Modality == "DX"


def test_options_keep_only_what_their_columns_keep(tmp_path):
    _, markers = _write_marked(tmp_path / "in")
    options = [o for o in OPTIONS if o != "retain_safe_private"]
    deidentify_folder(tmp_path / "in", tmp_path / "out", salt="k", options=options)
    [ds] = _outputs(tmp_path / "out")
    kept = {k for name in options for k in OPTION_COLUMNS.get(name, {}).get("K", ())}
    # Times are C under Retain Modified Dates: a whole-day shift leaves the time of day.
    times = {k for k in OPTION_COLUMNS["retain_modified_dates"]["C"]
             if dictionary_VR(tag_for_keyword(k)) == "TM"}
    survivors = _survivors(ds, markers)
    assert {s.split(">")[-1] for s in survivors} <= kept | times
    assert {"PatientAge", "PatientWeight", "DeviceSerialNumber", "StationName"} <= survivors
    assert ds.ImageComments == "[NAME]" and ds.SeriesDescription == "[NAME]"  # Clean Descriptors
    assert ds.PatientBirthDate == "" and ds.AcquisitionDate not in ("", "19770707")  # Z stays Z; C shifts
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == [
        "113100", "113107", "113108", "113109", "113105", "113104", "113103"]
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"


def test_the_table_is_the_standards_2024b_table():
    assert TABLE_SOURCE.startswith("PS3.15 2024b Table E.1-1")
    assert len(BASIC) + len(REPEATING) >= 600 and all(keyword_for_tag(tag) for tag in BASIC)
    assert set(BASIC.values()) == {"D", "Z", "X", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}
    assert BASIC[tag_for_keyword("StationAETitle")] == "X" and BASIC[tag_for_keyword("StudyInstanceUID")] == "U"


def test_option_columns_name_rows_of_the_table():
    for name, column in OPTION_COLUMNS.items():
        assert name in OPTIONS and set(column) <= {"K", "C"}
        for keywords in column.values():
            assert isinstance(keywords, tuple) and all(tag_for_keyword(k) in BASIC for k in keywords)


def test_clean_graphics_and_structured_content_keep_their_sequences_with_the_text_scrubbed(tmp_path):
    text, graphic, content = Dataset(), Dataset(), Dataset()
    text.UnformattedTextValue = "Dr. Quinn 03/14/2023"
    graphic.TextObjectSequence, graphic.GraphicLayer = [text], "LAYER1"
    content.ValueType, content.TextValue, content.PersonName = "TEXT", "Discussed with Dr. Quinn", "Quinn^Harriet"
    ds = _image(generate_uid(), "1.2.3", "1.2.3.1", GraphicAnnotationSequence=[graphic], ContentSequence=[content])
    _save(ds, tmp_path / "in" / "a.dcm")
    deidentify_folder(tmp_path / "in", tmp_path / "basic", salt="k")
    assert {"GraphicAnnotationSequence", "ContentSequence"}.isdisjoint(_outputs(tmp_path / "basic")[0].dir())
    options = ["clean_graphics", "clean_structured_content"]
    deidentify_folder(tmp_path / "in", tmp_path / "out", salt="k", options=options)
    [out] = _outputs(tmp_path / "out")
    assert out.GraphicAnnotationSequence[0].TextObjectSequence[0].UnformattedTextValue == "[NAME] [DATE]"
    item = out.ContentSequence[0]
    assert item.TextValue == "Discussed with [NAME]" and "Quinn" not in str(item.PersonName)


def test_ordinary_study_loses_its_identifiers_and_keeps_its_pixels(tmp_path):
    sources = [pydicom.dcmread(p) for p in _write_study(tmp_path / "in")]
    summary = deidentify_folder(tmp_path / "in", tmp_path / "out", salt="s3cret")

    assert summary["written"] == 2 and summary["failed"] == 0
    for path in (tmp_path / "out").rglob("*.dcm"):
        raw = path.read_bytes()
        for value in [*PHI.values(), "Jane", "Doe", "Smith", "ACME", *(str(s.SOPInstanceUID) for s in sources),
                      str(sources[0].StudyInstanceUID), "20240315"]:
            assert value.encode() not in raw, f"{value!r} survived in {path.name}"
    by_pixels = {ds.PixelData: ds for ds in _outputs(tmp_path / "out")}
    for src in sources:
        ds = by_pixels[src.PixelData]  # identical pixel data for every source image
        assert not any(element.tag.is_private for element in ds) and 0x60003000 not in ds
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


def test_dates_shifted_per_patient_with_the_modified_dates_option(tmp_path):
    _write_study(tmp_path / "in")
    deidentify_folder(tmp_path / "in", tmp_path / "out", salt="s", options=["retain_modified_dates"])
    outputs = _outputs(tmp_path / "out")
    shifted = {str(ds.ContentDate) for ds in outputs}
    assert len(shifted) == 1 and shifted.pop() < "20240115"
    assert {str(ds.StudyDate) for ds in outputs} == {str(outputs[0].ContentDate)}
    assert outputs[0].PatientBirthDate == ""  # Z, and not in the option's column
    assert [c.CodeValue for c in outputs[0].DeidentificationMethodCodeSequence] == ["113100", "113107"]


def test_de_identifying_twice_is_stable(tmp_path):
    _write_marked(tmp_path / "in")
    _write_study(tmp_path / "in" / "study")
    options = ["retain_modified_dates", "clean_descriptors", "clean_structured_content"]
    deidentify_folder(tmp_path / "in", tmp_path / "once", salt="k", options=options)
    deidentify_folder(tmp_path / "once", tmp_path / "twice", salt="k", options=options)
    once = {p.relative_to(tmp_path / "once"): p.read_bytes() for p in (tmp_path / "once").rglob("*.dcm")}
    twice = {p.relative_to(tmp_path / "twice"): p.read_bytes() for p in (tmp_path / "twice").rglob("*.dcm")}
    assert len(once) == 3 and once == twice


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # pydicom, writing the bad input
def test_uid_stored_as_a_path_cannot_escape_the_output_folder(tmp_path):
    ds = _image("1.2.3.4", "1.2.3", "1.2.3.5")
    ds.add_new(tag_for_keyword("StudyInstanceUID"), "LO", "../../x")
    ds.add_new(tag_for_keyword("SOPInstanceUID"), "LO", "../../../y")
    _save(ds, tmp_path / "in" / "evil.dcm")
    summary = deidentify_folder(tmp_path / "in", tmp_path / "deep" / "out", salt="k")
    assert summary["written"] == 1
    [path] = (tmp_path / "deep" / "out").rglob("*.dcm")
    out_ds = pydicom.dcmread(path)
    assert out_ds["StudyInstanceUID"].VR == "UI" and str(out_ds.StudyInstanceUID).startswith("2.25.")
    outside = {p for p in tmp_path.rglob("*") if p.is_file()} - {path, *(tmp_path / "in").rglob("*")}
    assert outside == {default_log_path(tmp_path / "deep" / "out")}


def test_an_output_folder_inside_the_input_is_not_read_back(tmp_path):
    _write_study(tmp_path)
    for _ in range(2):
        summary = deidentify_folder(tmp_path, tmp_path / "out", salt="k")
    assert summary["skipped"] == 2 and summary["failed"] == 0  # the rerun finds its outputs written
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 2


def test_two_inputs_with_one_sop_instance_uid_write_one_file_and_report_the_other(tmp_path):
    sop = generate_uid()
    _save(_image(sop, "1.2.3", "1.2.3.1", 0), tmp_path / "in" / "a.dcm")
    _save(_image(sop, "1.2.3", "1.2.3.1", 1), tmp_path / "in" / "b.dcm")
    summary = deidentify_folder(tmp_path / "in", tmp_path / "out", salt="k")
    assert (summary["written"], summary["skipped"]) == (1, 1)
    [path] = (tmp_path / "out").rglob("*.dcm")
    assert pydicom.dcmread(path).PixelData == pydicom.dcmread(tmp_path / "in" / "a.dcm").PixelData
    records = {r["input"]: r for r in _log(tmp_path / "out")}
    assert records["b.dcm"]["status"] == "skipped" and "a.dcm" in records["b.dcm"]["reason"]


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")  # pydicom, on the cut file
@pytest.mark.parametrize("encapsulated", [False, True])
def test_a_truncated_input_never_replaces_a_good_output(tmp_path, encapsulated):
    ds = _image(generate_uid(), "1.2.3", "1.2.3.1")
    if encapsulated:  # compressed pixel data: fragments with no length to check against the header
        ds.file_meta.TransferSyntaxUID = RLELossless
        ds.PixelData = encapsulate([bytes(range(256)) * 8])
        ds["PixelData"].VR = "OB"
    src = _save(ds, tmp_path / "in" / "a.dcm")
    deidentify_folder(tmp_path / "in", tmp_path / "out", salt="k")
    [path] = (tmp_path / "out").rglob("*.dcm")
    good = path.read_bytes()
    src.write_bytes(src.read_bytes()[:-700])  # cut into the pixel data
    summary = deidentify_folder(tmp_path / "in", tmp_path / "out", salt="k")
    assert summary["failed"] == 1 and path.read_bytes() == good
    assert "truncated" in _log(tmp_path / "out")[-1]["reason"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_every_input_is_accounted_for_and_deep_nesting_fails_alone(tmp_path):
    _write_study(tmp_path / "in")
    deep = _image(generate_uid(), "1.2.3", "1.2.3.1")
    item = deep
    for _ in range(MAX_NESTING + 5):
        child = Dataset()
        child.CodeValue = "1"
        item.ViewCodeSequence = [child]
        item = child
    _save(deep, tmp_path / "in" / "deep.dcm")
    (tmp_path / "in" / "notes.txt").write_text("not DICOM")
    summary = deidentify_folder(tmp_path / "in", tmp_path / "out", salt="k")
    assert (summary["written"], summary["skipped"], summary["failed"]) == (2, 1, 1)
    records = {r["input"]: r for r in _log(tmp_path / "out")}
    assert set(records) == {"img0.dcm", "img1.dcm", "deep.dcm", "notes.txt"}
    assert records["deep.dcm"]["status"] == "failed" and "nested" in records["deep.dcm"]["reason"]
    assert records["notes.txt"] == {"input": "notes.txt", "status": "skipped", "reason": "not a DICOM file",
                                    "output": None, "flags": []}
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 2


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom, on the corpus's deliberately broken files
def test_every_file_of_pydicoms_test_corpus_is_accounted_for(tmp_path):
    """pydicom's own test files: odd transfer syntaxes, broken VRs, missing meta, truncation."""
    corpus = Path(DATA_ROOT) / "test_files"
    files = {p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file()}
    summary = deidentify_folder(corpus, tmp_path / "out", salt="k", allow_burned_in=True)
    records = _log(tmp_path / "out")
    assert {r["input"] for r in records} == files and len(records) == len(files)
    assert summary["written"] == len(list((tmp_path / "out").rglob("*.dcm"))) > 50
    assert all(r["reason"] for r in records if r["status"] != "written")


def test_burned_in_annotation_is_refused_unless_allowed(tmp_path):
    _write_study(tmp_path / "in", burned_in="YES")
    with pytest.raises(UnsupportedImageError, match="BurnedInAnnotation"):
        deidentify_folder(tmp_path / "in", tmp_path / "out")
    assert not (tmp_path / "out").exists()

    assert main(["deid", "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--allow-burned-in"]) == 0
    assert {ds.PatientIdentityRemoved for ds in _outputs(tmp_path / "out")} == {"NO"}


def test_ultrasound_without_a_burned_in_flag_is_flagged(tmp_path):
    _save(_image(generate_uid(), "1.2.3", "1.2.3.1", Modality="US"), tmp_path / "in" / "us.dcm")
    summary = deidentify_folder(tmp_path / "in", tmp_path / "out", salt="k")
    assert summary["written"] == 1 and summary["burned_in_suspected"] == 1
    assert _log(tmp_path / "out")[0]["flags"] == ["burned_in_suspected"]
    assert _outputs(tmp_path / "out")[0].PatientIdentityRemoved == "NO"


def test_cli_flags_choose_the_options(tmp_path, capsys):
    _write_study(tmp_path / "in")
    assert main(["deid", "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--salt", "k",
                 "--retain-patient-characteristics", "--clean-descriptors"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["options"] == ["retain_patient_characteristics", "clean_descriptors"]
    ds = _outputs(tmp_path / "out")[0]
    assert ds.PatientAge == PHI["PatientAge"] and ds.ImageComments == "per [NAME], bed 4"


def test_retain_safe_private_keeps_only_the_named_private_attributes(tmp_path):
    ds = _image(generate_uid(), "1.2.3", "1.2.3.1")
    block = ds.private_block(0x0019, "SAFE VENDOR", create=True)
    block.add_new(0x10, "DS", "1.5")
    block.add_new(0x11, "LO", "Doe^Jane")
    ds.private_block(0x0011, "ACME PRIVATE", create=True).add_new(0x10, "DS", "1.5")
    _save(ds, tmp_path / "in" / "a.dcm")
    assert main(["deid", "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                 "--retain-safe-private", "0019,SAFE VENDOR,10"]) == 0
    [out] = _outputs(tmp_path / "out")
    assert out.DeidentificationMethodCodeSequence[-1].CodeValue == "113111"
    assert sorted(element.tag for element in out if element.tag.is_private) == [0x00190010, 0x00191010]
