"""DICOMweb loop against a real Orthanc: QIDO finds, WADO retrieves, STOW stores one SR per study."""

from __future__ import annotations

import pytest

from multimodal.pacs import PacsError
from multimodal.pacs.dicomweb import DicomwebPacs, score_pacs
from multimodal.pacs.scoring import sr_algorithm


def _pacs(orthanc, **kw) -> DicomwebPacs:
    return DicomwebPacs(orthanc.dicomweb_url, user=orthanc.user, password=orthanc.password, **kw)


def _upload(orthanc, datasets) -> str:
    pacs = _pacs(orthanc)
    pacs.client.store_instances(datasets)
    return str(datasets[0].StudyInstanceUID)


def test_score_pacs_is_idempotent_and_sr_reads_back(orthanc, phantom_study, scorer):
    study = _upload(orthanc, phantom_study)
    kw = dict(studies=[study], user=orthanc.user, password=orthanc.password, scorer=scorer)

    first = score_pacs(orthanc.dicomweb_url, **kw)
    second = score_pacs(orthanc.dicomweb_url, **kw)

    assert (first["scored"], first["failed"]) == (1, 0)
    assert (second["scored"], second["skipped"]) == (0, 1)
    pacs = _pacs(orthanc)
    srs = pacs.structured_reports(study)
    assert len(srs) == 1
    sr = pacs.client.retrieve_instance(study, srs[0].SeriesInstanceUID, srs[0].SOPInstanceUID)
    assert sr_algorithm(sr) == ("mmdx-pacs-test", "0.0.1")
    assert str(sr.SOPInstanceUID) == first["studies"][0]["sr"]


def test_find_studies_filters_by_modality_and_date(orthanc, phantom_study):
    study = _upload(orthanc, phantom_study)
    pacs = _pacs(orthanc)
    modality = str(phantom_study[0].Modality)  # phantom studies are CR or DX, by seed
    assert study in pacs.find_studies(since="20240101", modalities=(modality,))
    assert study not in pacs.find_studies(since="20240103", modalities=(modality,))
    assert study not in pacs.find_studies(modalities=("CT",))
    assert pacs.find_studies(accession=str(phantom_study[0].AccessionNumber)) == [study]


def test_retrieve_keeps_pixels(orthanc, phantom_study):
    study = _upload(orthanc, phantom_study)
    got = {str(ds.SOPInstanceUID): ds.PixelData for ds in _pacs(orthanc).retrieve(study)}
    assert got == {str(ds.SOPInstanceUID): ds.PixelData for ds in phantom_study}


def test_wrong_password_is_a_clear_error_and_writes_nothing(orthanc, phantom_study, scorer):
    study = _upload(orthanc, phantom_study)
    with pytest.raises(PacsError, match="credentials were refused"):
        score_pacs(orthanc.dicomweb_url, studies=[study], user=orthanc.user, password="wrong", scorer=scorer)
    assert _pacs(orthanc).structured_reports(study) == []


def test_unreachable_server_is_a_clear_error(scorer):
    from multimodal.pacs.orthanc import free_port

    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    with pytest.raises(PacsError, match="cannot reach"):
        score_pacs(url, since="20240101", scorer=scorer, timeout=2)


def _sr_probabilities(sr) -> dict[str, float]:
    """Observation name -> Probability from the SR's TID 1501 measurement groups."""
    probabilities = {}
    groups = [item for item in _walk(sr.ContentSequence) if item.ValueType == "CONTAINER"]
    for group in groups:
        children = group.get("ContentSequence", [])
        names = [c.TextValue for c in children if c.ValueType == "TEXT"
                 and c.ConceptNameCodeSequence[0].CodeValue == "112039"]
        values = [float(c.MeasuredValueSequence[0].NumericValue) for c in children if c.ValueType == "NUM"
                  and c.ConceptNameCodeSequence[0].CodeMeaning == "Probability"]
        if names and values:
            probabilities[names[0]] = values[0]
    return probabilities


def _walk(items):
    for item in items:
        yield item
        yield from _walk(item.get("ContentSequence", []))


def test_cli_pacs_score_stores_the_predictors_probabilities(orthanc, phantom_study, tiny_model_dir):
    from multimodal.cli import main
    from multimodal.inference.predictor import Predictor

    study = _upload(orthanc, phantom_study)
    argv = ["pacs", "score", "--url", orthanc.dicomweb_url, "--model", str(tiny_model_dir), "--study", study,
            "--user", orthanc.user, "--password", orthanc.password]
    assert main(argv) == 0
    assert main(argv) == 0

    pacs = _pacs(orthanc)
    srs = pacs.structured_reports(study)
    assert len(srs) == 1
    sr = pacs.client.retrieve_instance(study, srs[0].SeriesInstanceUID, srs[0].SOPInstanceUID)
    expected = Predictor.from_pretrained(tiny_model_dir, device="cpu").predict(phantom_study)  # the view rule
    assert _sr_probabilities(sr) == pytest.approx(
        {name: obs.probability for name, obs in expected.observations.items()}, abs=1e-5)


def test_retries_5xx_and_sends_the_bearer_token():
    """A server that answers 503 twice, then an empty QIDO result: the client retries and succeeds."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    seen = []

    class Flaky(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            self.send_response(503 if len(seen) <= 2 else 200)
            self.send_header("Content-Type", "application/dicom+json")
            self.end_headers()
            if len(seen) > 2:
                self.wfile.write(b"[]")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        pacs = DicomwebPacs(f"http://127.0.0.1:{server.server_port}/dicom-web", token="t0k3n", backoff=0.01)
        assert pacs.find_studies(modalities=("DX",)) == []
    finally:
        server.shutdown()
    assert seen == ["Bearer t0k3n"] * 3
