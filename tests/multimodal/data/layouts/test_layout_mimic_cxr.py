"""MIMIC-CXR-JPG (and its DICOM variant) as released: .csv.gz tables, files/pXX/pSUBJECT/sSTUDY/ images
and the free-text reports beside the study folders or under --reports."""

from __future__ import annotations

import pytest

from multimodal.data.layouts.mimic_cxr import manifest_from_mimic_cxr, report_sections
from multimodal.data.manifest import load_manifest
from preprocessing.errors import ConfigError

METADATA = """
dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning
174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962,10000032,50414267,CHEST (PA AND LAT),LATERAL,2544,3056,21800506,213014.531,CHEST (PA AND LAT),lateral,Erect
02aa804e-bde0afdd-112c0b34-7bc16630-4e384014,10000032,50414267,CHEST (PA AND LAT),PA,3056,2544,21800506,213014.531,CHEST (PA AND LAT),postero-anterior,Erect
2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab,10000032,53189527,CHEST (PA AND LAT),PA,3056,2544,21800626,165500.312,CHEST (PA AND LAT),postero-anterior,Erect
68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714,10000764,57375967,CHEST (PORTABLE AP),AP,2705,2539,21321015,210008.000,CHEST (PORTABLE AP),antero-posterior,
ffffffff-00000000-00000000-00000000-00000000,10000898,50771383,CHEST (PA AND LAT),PA,3056,2544,21320405,114409.000,CHEST (PA AND LAT),postero-anterior,Erect
"""
CHEXPERT = """
subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,Fracture,Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,Pleural Other,Pneumonia,Pneumothorax,Support Devices
10000032,50414267,,,,,,,,,1.0,,,,,
10000032,53189527,,,,,,,,,1.0,,,,,
10000764,57375967,,,1.0,,,,,,,,,-1.0,,
"""
SPLIT = """
dicom_id,study_id,subject_id,split
174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962,50414267,10000032,train
02aa804e-bde0afdd-112c0b34-7bc16630-4e384014,50414267,10000032,train
2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab,53189527,10000032,train
68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714,57375967,10000764,test
"""
REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with new onset ascites  // eval for infection

 TECHNIQUE:  Chest PA and lateral

 COMPARISON:  None.

 FINDINGS:

 There is no focal consolidation, pleural effusion or pneumothorax.  Bilateral
 nodular opacities that most likely represent nipple shadows.

 IMPRESSION:

 No acute cardiopulmonary process.
"""


@pytest.fixture
def release(tmp_path, write_image, write_table):
    root = tmp_path / "mimic-cxr-jpg"
    write_table(root / "mimic-cxr-2.0.0-metadata.csv.gz", METADATA)
    write_table(root / "mimic-cxr-2.0.0-chexpert.csv.gz", CHEXPERT)
    write_table(root / "mimic-cxr-2.0.0-split.csv.gz", SPLIT)
    for line in METADATA.strip().splitlines()[1:4]:
        dicom_id, subject, study = line.split(",")[:3]
        write_image(root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom_id}.jpg")
    (root / "files/p10/p10000032/s50414267.txt").write_text(REPORT)
    return root


def test_studies_views_labels_reports_and_official_split(release, write_dicom, no_patient_crosses_splits):
    # The DICOM variant: the same ids, .dcm files (here only the existence matters).
    write_dicom(release / "files/p10/p10000764/s57375967/68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714.dcm")
    records = {r.study_id: r for r in load_manifest(manifest_from_mimic_cxr(release, out=release / "m.jsonl"))}
    assert set(records) == {"s50414267", "s53189527", "s57375967"}
    study = records["s50414267"]
    assert study.views == ["PA", "LATERAL"]
    assert study.images[0].endswith("02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.jpg")
    assert study.findings.startswith("There is no focal consolidation") and "nipple shadows." in study.findings
    assert study.meta["impression"] == "No acute cardiopulmonary process."
    assert study.text == "___F with new onset ascites // eval for infection"
    assert study.labels["No Finding"] == 1 and study.labels["Edema"] is None
    portable = records["s57375967"]
    assert portable.images[0].endswith(".dcm") and portable.labels["Pneumonia"] == -1 and portable.split == "test"
    assert study.split == records["s53189527"].split == "train"
    no_patient_crosses_splits(records.values())
    assert "ffffffff" in (release / "m.errors.jsonl").read_text()  # a listed image that is not there


def test_reports_from_their_own_folder(release, tmp_path):
    reports = tmp_path / "mimic-cxr-reports"
    (reports / "files/p10/p10000032").mkdir(parents=True)
    (release / "files/p10/p10000032/s50414267.txt").rename(reports / "files/p10/p10000032/s50414267.txt")
    records = {r.study_id: r for r in load_manifest(manifest_from_mimic_cxr(release, out=tmp_path / "m.jsonl",
                                                                           reports=reports))}
    assert records["s50414267"].meta["impression"] == "No acute cardiopulmonary process."


def test_report_sections_without_headings():
    assert report_sections("Lungs are clear.") == {}
    assert report_sections("WET READ: x\n FINDINGS: a  b\nIMPRESSION: c")["FINDINGS"] == "a b"


@pytest.mark.parametrize(("policy", "expected"), [("keep", -1), ("U-Ignore", None), ("U-Ones", 1), ("U-Zeros", 0)])
def test_the_uncertain_policy_is_the_one_of_chexpert_and_mmdx_label(release, write_dicom, policy, expected):
    write_dicom(release / "files/p10/p10000764/s57375967/68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714.dcm")
    records = {r.study_id: r for r in load_manifest(manifest_from_mimic_cxr(release, out=release / "m.jsonl",
                                                                             uncertain=policy))}
    assert records["s57375967"].labels["Pneumonia"] == expected and records["s57375967"].labels["Consolidation"] == 1


def test_an_unknown_uncertain_policy_names_the_option(release):
    with pytest.raises(ConfigError, match="uncertain"):
        manifest_from_mimic_cxr(release, out=release / "m.jsonl", uncertain="maybe")
