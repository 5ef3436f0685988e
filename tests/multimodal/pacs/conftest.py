"""A real Orthanc (with DICOMweb) for the PACS tests, one per session, plus studies and a scorer.

Nothing is installed here: when the Debian packages are missing the tests skip with the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from multimodal.pacs.orthanc import LocalOrthanc, free_port, missing_orthanc
from multimodal.pacs.scoring import StudyScorer

LISTENER_AET = "MMDXTEST"
DX_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"


@pytest.fixture(scope="session")
def listener_port() -> int:
    """The port every test listener uses; Orthanc knows it as modality LISTENER_AET."""
    return free_port()


@pytest.fixture(scope="session")
def orthanc(listener_port, tmp_path_factory) -> LocalOrthanc:
    reason = missing_orthanc()
    if reason:
        pytest.skip(reason)
    server = LocalOrthanc(modalities={LISTENER_AET: ("127.0.0.1", listener_port)},
                          workdir=tmp_path_factory.mktemp("orthanc"))
    server.start()
    yield server
    server.stop()


def write_dx_study(folder: Path, views: int = 2, seed: int = 0) -> list[Path]:
    """A small DX study (64 px, 12-bit) with identifying header values; returns the file paths."""
    rng = np.random.default_rng(seed)
    study, series = generate_uid(), generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(views):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = DX_PRESENTATION
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.Modality, ds.ViewPosition = "DX", ("PA", "LL")[i % 2]
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Doe^Jane", f"MRN{seed:05d}", "19600101", "F"
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20240102", "101010", f"ACC{seed:05d}", "7"
        ds.ReferringPhysicianName, ds.InstitutionName = "Smith^John", "General Hospital"
        ds.SeriesNumber, ds.InstanceNumber = 1, i + 1
        ds.Rows = ds.Columns = 64
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = rng.integers(0, 4096, (64, 64), dtype=np.uint16).tobytes()
        path = folder / f"{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@pytest.fixture
def dx_study(tmp_path, request) -> list[pydicom.Dataset]:
    """One fresh two-view DX study (new UIDs each time), read back as datasets."""
    return [pydicom.dcmread(p) for p in write_dx_study(tmp_path / "study", seed=hash(request.node.name) % 10**5)]


@pytest.fixture(scope="session")
def scorer() -> StudyScorer:
    """A highdicom SR scorer naming the algorithm 'mmdx-test' 1 (a probability per study)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.sr.AlgorithmIdentification(name="mmdx-test", version="1")

    def score(datasets):
        device = hd.sr.DeviceObserverIdentifyingAttributes(uid=generate_uid(), name="mmdx-test")
        context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device))
        group = hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="study"),
            measurements=[hd.sr.Measurement(name=codes.DCM.Probability, value=0.25, unit=codes.UCUM.NoUnits,
                                            algorithm_id=algorithm)], algorithm_id=algorithm)
        report = hd.sr.MeasurementReport(observation_context=context, imaging_measurements=[group],
                                         procedure_reported=hd.sr.CodedConcept("399208008", "SCT", "Plain chest X-ray"))
        return hd.sr.ComprehensiveSR(evidence=datasets, content=report[0], series_instance_uid=generate_uid(),
                                     series_number=99, sop_instance_uid=generate_uid(), instance_number=1,
                                     manufacturer="mmdx", is_complete=True)

    return StudyScorer(score, "mmdx-test", "1")


def c_echo(port: int, called_aet: str, calling_aet: str = "ECHOSCU") -> int | None:
    """C-ECHO status (0 = success), or None when the association is rejected or refused."""
    ae = AE(ae_title=calling_aet)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title=called_aet)
    if not assoc.is_established:
        return None
    status = assoc.send_c_echo()
    assoc.release()
    return status.Status if status else None
