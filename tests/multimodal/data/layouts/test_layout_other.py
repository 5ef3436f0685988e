"""IU X-ray (Open-I XML + PNG), VinDr-CXR, RSNA Pneumonia and PadChest as released."""

from __future__ import annotations

import pytest

from multimodal.data.layouts import write_layout_manifest
from multimodal.data.manifest import load_manifest
from preprocessing.errors import ConfigError

IU_XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation>
   <meta type="rr"/>
   <uId id="CXR{n}"/>
   <MedlineCitation Owner="Indiana University" Status="supplied by publisher">
      <Article PubModel="Electronic">
         <Abstract>
            <AbstractText Label="COMPARISON">None.</AbstractText>
            <AbstractText Label="INDICATION">Positive TB test</AbstractText>
            <AbstractText Label="FINDINGS">{findings}</AbstractText>
            <AbstractText Label="IMPRESSION">{impression}</AbstractText>
         </Abstract>
      </Article>
   </MedlineCitation>
   <MeSH>
      <major>{mesh}</major>
   </MeSH>
   <parentImage id="CXR{n}_1_IM-000{n}-3001">
      <figureId>F1</figureId>
      <caption>Xray Chest PA and Lateral</caption>
   </parentImage>
   <parentImage id="CXR{n}_1_IM-000{n}-4001">
      <figureId>F2</figureId>
   </parentImage>
</eCitation>
"""


def test_iu_open_i_reports_and_pngs(tmp_path, write_image, no_patient_crosses_splits):
    root = tmp_path / "open-i"
    reports = [("The heart is normal in size. The lungs are clear.", "Normal chest x-XXXX.", "normal"),
               ("Large right pleural effusion.", "Right effusion.", "Pleural Effusion/right/large")]
    for n, (findings, impression, mesh) in enumerate(reports, start=1):
        (root / "ecgen-radiology").mkdir(parents=True, exist_ok=True)
        (root / "ecgen-radiology" / f"{n}.xml").write_text(IU_XML.format(n=n, findings=findings,
                                                                         impression=impression, mesh=mesh))
        for kind in ("3001", "4001"):
            write_image(root / "NLMCXR_png" / f"CXR{n}_1_IM-000{n}-{kind}.png")
    (root / "ecgen-radiology" / "3.xml").write_text("<eCitation><uId id='CXR3'/>")
    records = {r.study_id: r for r in load_manifest(write_layout_manifest("iu", root, out=root / "m.jsonl"))}
    assert set(records) == {"CXR1", "CXR2"}
    effusion = records["CXR2"]
    assert len(effusion.images) == 2 and effusion.text == "Positive TB test"
    assert effusion.labels["Pleural Effusion"] == 1 and effusion.meta["mesh"] == ["Pleural Effusion/right/large"]
    assert records["CXR1"].meta["impression"] == "Normal chest x-XXXX."
    no_patient_crosses_splits(records.values())
    assert "3.xml" in (root / "m.errors.jsonl").read_text()


VINDR_LABELS = ("image_id,rad_ID,Aortic enlargement,Atelectasis,Cardiomegaly,Pleural effusion,Nodule/Mass,"
                "Lung tumor,Pneumonia,No finding")


def test_vindr_cxr_radiologists_boxes_and_official_test(tmp_path, write_dicom, write_table):
    root = tmp_path / "vindr-cxr"
    write_table(root / "annotations/image_labels_train.csv", VINDR_LABELS + """
        000434271f63a053c4128a0ba6352c7f,R2,0,0,0,0,0,0,0,1
        000434271f63a053c4128a0ba6352c7f,R3,0,0,1,0,0,0,0,0
        000434271f63a053c4128a0ba6352c7f,R6,0,0,0,0,0,0,0,1
        00053190460d56c53cc3e57321387478,R11,0,0,0,0,0,0,0,1
        """)
    write_table(root / "annotations/annotations_train.csv", """
        image_id,rad_id,class_name,x_min,y_min,x_max,y_max
        000434271f63a053c4128a0ba6352c7f,R2,No finding,,,,
        000434271f63a053c4128a0ba6352c7f,R3,Cardiomegaly,20.0,30.0,50.0,45.0
        000434271f63a053c4128a0ba6352c7f,R6,No finding,,,,
        00053190460d56c53cc3e57321387478,R11,No finding,,,,
        """)
    write_table(root / "annotations/image_labels_test.csv", """
        image_id,Aortic enlargement,Atelectasis,Cardiomegaly,Pleural effusion,Nodule/Mass,Lung tumor,Pneumonia,No finding
        002a34c58c5b758217ed1f584ccbcfe9,0,0,0,1,0,0,0,0
        """)
    write_table(root / "annotations/annotations_test.csv", """
        image_id,class_name,x_min,y_min,x_max,y_max
        002a34c58c5b758217ed1f584ccbcfe9,Pleural effusion,5,40,30,60
        002a34c58c5b758217ed1f584ccbcfe9,Pleural effusion,5,40,2,60
        """)
    for part, image_id in (("train", "000434271f63a053c4128a0ba6352c7f"), ("train", "00053190460d56c53cc3e57321387478"),
                           ("test", "002a34c58c5b758217ed1f584ccbcfe9")):
        write_dicom(root / part / f"{image_id}.dicom", sex="M", age="061Y")
    records = {r.study_id: r for r in load_manifest(write_layout_manifest("vindr-cxr", root, out=root / "m.jsonl"))}
    cardio = records["000434271f63a053c4128a0ba6352c7f"]
    assert cardio.labels["Cardiomegaly"] == 1 and cardio.labels["Pneumonia"] == 0  # one of three radiologists
    assert [(b.label, b.xywh) for b in cardio.boxes] == [("Cardiomegaly", (20.0, 30.0, 30.0, 15.0))]
    assert cardio.regions["Cardiomegaly"] and cardio.meta["radiologists"] == 3 and cardio.meta["age"] == 61
    assert records["002a34c58c5b758217ed1f584ccbcfe9"].split == "test"
    assert len(records["002a34c58c5b758217ed1f584ccbcfe9"].boxes) == 1  # the empty box is a bad row
    assert {records[i].split for i in records if i != "002a34c58c5b758217ed1f584ccbcfe9"} <= {"train", "val"}
    assert '"line": 3' in (root / "m.errors.jsonl").read_text()


def test_rsna_pneumonia_boxes(tmp_path, write_dicom, write_table, no_patient_crosses_splits):
    root = tmp_path / "rsna"
    write_table(root / "stage_2_train_labels.csv", """
        patientId,x,y,width,height,Target
        0004cfab-14fd-4e49-80ba-63a80b6bddd6,,,,,0
        00436515-870c-4b36-a041-de91049b9ab4,264.0,152.0,213.0,379.0,1
        00436515-870c-4b36-a041-de91049b9ab4,562.0,152.0,256.0,453.0,1
        00322d4d-1c29-4943-afc9-b6754be640eb,,,,,1
        """)
    write_table(root / "stage_2_detailed_class_info.csv", """
        patientId,class
        0004cfab-14fd-4e49-80ba-63a80b6bddd6,No Lung Opacity / Not Normal
        00436515-870c-4b36-a041-de91049b9ab4,Lung Opacity
        00436515-870c-4b36-a041-de91049b9ab4,Lung Opacity
        """)
    for patient in ("0004cfab-14fd-4e49-80ba-63a80b6bddd6", "00436515-870c-4b36-a041-de91049b9ab4",
                    "00322d4d-1c29-4943-afc9-b6754be640eb"):
        write_dicom(root / "stage_2_train_images" / f"{patient}.dcm", patient_id=patient, view="AP",
                    rows=1024, cols=1024)
    records = {r.study_id: r for r in load_manifest(write_layout_manifest("rsna-pneumonia", root,
                                                                          out=root / "m.jsonl"))}
    opacity = records["00436515-870c-4b36-a041-de91049b9ab4"]
    assert opacity.labels == {"Pneumonia": 1} and len(opacity.boxes) == 2 and opacity.views == ["AP"]
    assert opacity.regions["Pneumonia"] and opacity.meta["class"] == "Lung Opacity"
    assert records["0004cfab-14fd-4e49-80ba-63a80b6bddd6"].labels == {"Pneumonia": 0}
    assert "00322d4d" not in str(set(records))  # Target 1 without a box: a bad row
    assert '"line": 5' in (root / "m.errors.jsonl").read_text()
    no_patient_crosses_splits(records.values())


PADCHEST = (",ImageID,ImageDir,StudyDate_DICOM,StudyID,PatientID,PatientBirth,PatientSex_DICOM,ViewPosition_DICOM,"
            "Projection,MethodProjection,Pediatric,Modality_DICOM,Manufacturer_DICOM,PhotometricInterpretation_DICOM,"
            "PixelRepresentation_DICOM,PixelAspectRatio_DICOM,SpatialResolution_DICOM,BitsStored_DICOM,"
            "WindowCenter_DICOM,WindowWidth_DICOM,Rows_DICOM,Columns_DICOM,XRayTubeCurrent_DICOM,Exposure_DICOM,"
            "ExposureInuAs_DICOM,ExposureTime,RelativeXRayExposure_DICOM,ReportID,Report,MethodLabel,Labels,"
            "Localizations,LabelsLocalizationsBySentence,labelCUIS,LocalizationsCUIS")
PADCHEST_ROWS = """
0,20536686640136348236148679891455886468_k6ga29.png,0,20140915,20536686640136348236148679891455886468,839860488694292331637988235681460987,1930.0,F,POSTEROANTERIOR,PA,Manual review of DICOM fields,No,CR,ImagingDynamicsCompanyLtd,MONOCHROME2,0,None,None,12,2092,2251,1728,1872,250,2,2500,10,-1.42,4765777, sin hallazg patolog edad pacient .,Physician,['normal'],[],"[['normal'], ['normal']]",[],[]
1,135803415504923515076821959678074435083_fzis7d.png,0,20150914,135803415504923515076821959678074435083,313572750430997347502932654319389875966,1929.0,M,LATERAL,L,Manual review of DICOM fields,No,CR,ImagingDynamicsCompanyLtd,MONOCHROME2,0,None,None,12,2631,2065,3296,3236,400,10,10000,25,None,4991845, cambi pulmonar cronic sever .,Physician,"['pulmonary fibrosis', 'chronic changes']","['loc basal bilateral']","[['pulmonary fibrosis', 'loc basal bilateral']]",['C0034069'],['C1282378']
2,135803415504923515076821959678074435083_aaaaaa.png,1,20150914,135803415504923515076821959678074435083,313572750430997347502932654319389875966,1929.0,M,POSTEROANTERIOR,PA,Manual review of DICOM fields,No,CR,ImagingDynamicsCompanyLtd,MONOCHROME2,0,None,None,12,2631,2065,3296,3236,400,10,10000,25,None,4991845, cambi pulmonar cronic sever .,Physician,"['pulmonary fibrosis', 'chronic changes']","['loc basal bilateral']","[['pulmonary fibrosis', 'loc basal bilateral']]",['C0034069'],['C1282378']
3,999_bad.png,0,20150914,999,998,1929.0,M,POSTEROANTERIOR,PA,Manual review of DICOM fields,No,CR,X,MONOCHROME2,0,None,None,12,1,1,1,1,1,1,1,1,None,1, x .,Physician,['unterminated,[],[],[],[]
"""


def test_padchest_labels_vocabulary_views_and_bad_rows(tmp_path, write_image, write_table, no_patient_crosses_splits):
    root = tmp_path / "padchest"
    write_table(root / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz", PADCHEST + PADCHEST_ROWS)
    for line in PADCHEST_ROWS.strip().splitlines():
        _, image, folder = line.split(",")[:3]
        write_image(root / folder / image)
    records = {r.study_id: r for r in load_manifest(write_layout_manifest("padchest", root, out=root / "m.jsonl"))}
    fibrosis = records["135803415504923515076821959678074435083"]
    assert fibrosis.views == ["PA", "LATERAL"] and len(fibrosis.images) == 2
    assert fibrosis.labels == {"chronic changes": 1, "normal": 0, "pulmonary fibrosis": 1}
    assert fibrosis.meta["sex"] == "M" and fibrosis.meta["age"] == 86
    assert fibrosis.meta["localizations"] == ["loc basal bilateral"]
    assert records["20536686640136348236148679891455886468"].labels["normal"] == 1
    assert "999" not in records and '"line": 5' in (root / "m.errors.jsonl").read_text()
    no_patient_crosses_splits(records.values())


def test_unknown_dataset_or_option_names_itself(tmp_path):
    with pytest.raises(ConfigError, match="'dataset'"):
        write_layout_manifest("mimic", tmp_path)
    with pytest.raises(ConfigError, match="'uncertain'.*nih"):
        write_layout_manifest("nih", tmp_path, uncertain="U-Ones")


def test_the_command_line_offers_every_layout():
    from multimodal.cli.manifest import DATASETS
    from multimodal.data.layouts import LAYOUTS

    assert list(DATASETS) == list(LAYOUTS)
