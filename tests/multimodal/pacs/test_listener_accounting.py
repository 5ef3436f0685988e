"""The DIMSE listener accounts for every received instance and scores a study once (no PACS needed)."""

from __future__ import annotations

import json
import time

import numpy as np
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pynetdicom import AE

from multimodal.pacs.listener import Listener
from multimodal.pacs.orthanc import free_port
from multimodal.pacs.scoring import sr_algorithm

STUDY = "1.2.826.0.1.3680043.8.498.77"


def _dx(view: str, instance: int, rows: int = 32) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = uid.DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = STUDY, uid.generate_uid()
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "P9", "Listener^Test", "", ""
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "20240101", "", "", "", ""
    ds.Modality, ds.ViewPosition, ds.InstanceNumber = "DX", view, instance
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, 32, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (np.arange(32 * 32) % 4000).astype(np.uint16).tobytes()
    return ds


def test_three_instances_two_used_one_skipped_with_reason(scorer, tmp_path):
    spool = tmp_path / "spool"
    incoming = spool / "incoming" / STUDY
    incoming.mkdir(parents=True)
    views = {"RL": _dx("RL", 1), "LL": _dx("LL", 2), "PA": _dx("PA", 3)}
    for ds in views.values():
        ds.save_as(incoming / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    listener = Listener(scorer, spool)

    listener._process(STUDY)

    done = spool / "done" / STUDY
    lines = [json.loads(line) for line in (done / "accounting.jsonl").read_text().splitlines()]
    status = {line["file"]: line for line in lines}
    assert len(status) == 3
    assert status[f"{views['PA'].SOPInstanceUID}.dcm"] == {"file": f"{views['PA'].SOPInstanceUID}.dcm",
                                                            "status": "used", "view": "frontal (PA)"}
    assert status[f"{views['LL'].SOPInstanceUID}.dcm"]["view"] == "lateral (LL)"
    skipped = status[f"{views['RL'].SOPInstanceUID}.dcm"]
    assert skipped["status"] == "skipped"
    assert skipped["reason"] == "study has 3 images, the model takes 2 (frontal + lateral)"
    assert sorted(p.name for p in done.glob("*.dcm") if not p.name.startswith("sr-")) == sorted(
        f"{views[v].SOPInstanceUID}.dcm" for v in ("PA", "LL"))
    assert [p.name for p in (spool / "skipped" / STUDY).glob("*.dcm")] == [f"{views['RL'].SOPInstanceUID}.dcm"]
    [sr_file] = done.glob("sr-*.dcm")
    import pydicom

    sr = pydicom.dcmread(sr_file)
    referenced = {item.ReferencedSOPInstanceUID for series in sr.CurrentRequestedProcedureEvidenceSequence
                  for s in series.ReferencedSeriesSequence for item in s.ReferencedSOPSequence}
    assert referenced == {views["PA"].SOPInstanceUID, views["LL"].SOPInstanceUID}
    assert sr_algorithm(sr) == ("mmdx-pacs-test", "0.0.1")
    assert not incoming.exists()


def test_a_sender_pausing_mid_association_gets_one_sr_for_the_whole_study(scorer, tmp_path):
    """Quiet for longer than the quiet period but the association still open: the study is not complete."""
    calls = []

    def counting(datasets):
        calls.append(sorted(str(ds.ViewPosition) for ds in datasets))
        return scorer(datasets)

    port = free_port()
    with Listener(counting, tmp_path / "spool", aet="PAUSE", port=port, quiet_period=0.3) as listener:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(uid.DigitalXRayImageStorageForPresentation, uid.ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", port, ae_title="PAUSE")
        assert assoc.is_established
        assert assoc.send_c_store(_dx("PA", 1)).Status == 0
        time.sleep(1.5)  # five quiet periods with the association open
        assert assoc.send_c_store(_dx("LL", 2)).Status == 0
        assoc.release()
        assert listener.wait_idle(60)
    assert calls == [["LL", "PA"]]
    assert len(list((tmp_path / "spool" / "done" / STUDY).glob("sr-*.dcm"))) == 1
