"""A real Orthanc (with DICOMweb) for the PACS tests, one per session, plus studies and a scorer.

Nothing is installed here: when the Debian packages are missing the tests skip with the reason.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pydicom
import pytest
import torch
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from multimodal.data.phantom import write_phantom_dataset
from multimodal.models.configuration import MultimodalConfig
from multimodal.models.modeling import MultimodalModel
from multimodal.pacs.orthanc import LocalOrthanc, free_port, missing_orthanc
from multimodal.pacs.scoring import StudyScorer, load_scorer

LISTENER_AET = "MMDXTEST"


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


@pytest.fixture(autouse=True)
def _plain_http_auth_on_loopback(monkeypatch):
    """The test Orthanc speaks plain HTTP on loopback, where sending its password is allowed explicitly."""
    monkeypatch.setenv("MMDX_ALLOW_HTTP_AUTH", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised 64-px, one-layer model over the phantom observations, saved."""
    torch.manual_seed(0)
    config = MultimodalConfig(observations="phantom", image_size=64, patch_size=16, image_hidden=32, image_layers=1,
                              image_heads=2, image_mlp_dim=64, text_layers=1, text_max_length=32, fusion_layers=1,
                              fusion_heads=2, fusion_hidden=32, decoder_layers=1, decoder_max_length=6,
                              name="mmdx-pacs-test", version="0.0.1")
    return MultimodalModel.from_config(config, load_pretrained=False).save_pretrained(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def scorer(tiny_model_dir) -> StudyScorer:
    """The real Predictor + SR writer over the tiny model."""
    return load_scorer(tiny_model_dir, device="cpu")


_seeds = itertools.count(100)


@pytest.fixture
def phantom_study(tmp_path) -> list[pydicom.Dataset]:
    """One SYNTHETIC phantom study not yet in Orthanc (a new seed each time), as datasets."""
    write_phantom_dataset(tmp_path / "phantom", studies=1, seed=next(_seeds), size=64)
    return [pydicom.dcmread(p) for p in sorted((tmp_path / "phantom" / "dicom").glob("*/*.dcm"))]


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
