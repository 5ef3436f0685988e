"""DICOM TLS and HTTPS against real peers: Orthanc's DICOM TLS, dcmtk's echoscu +tls, a socat TLS
terminator in front of Orthanc's DICOMweb, and the listener as a pynetdicom TLS server."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import time

import pytest
import requests

from multimodal.cli import main
from multimodal.pacs import PacsError
from multimodal.pacs.dicomweb import DicomwebPacs, score_pacs
from multimodal.pacs.listener import Destination, Listener, c_store
from multimodal.pacs.orthanc import LocalOrthanc, free_port, missing_orthanc
from multimodal.security.audit import verify
from multimodal.security.pki import throwaway_pki
from multimodal.security.tls import TlsConfig
from preprocessing.crypto import generate_key_file

TLS_LISTENER_AET = "MMDXTLS"


def dcmtk_echoscu() -> str | None:
    """dcmtk's echoscu on PATH, passing over pynetdicom's script of the same name (an activated
    virtual environment puts that one first, and it knows no ``+tls``)."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = shutil.which("echoscu", path=folder)
        if candidate:
            version = subprocess.run([candidate, "--version"], capture_output=True, timeout=10)
            if b"dcmtk" in version.stdout + version.stderr:
                return candidate
    return None


ECHOSCU = dcmtk_echoscu()


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return throwaway_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def tls_listener_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def tls_orthanc(pki, tls_listener_port, tmp_path_factory) -> LocalOrthanc:
    reason = missing_orthanc() or (None if shutil.which("socat") else "socat is not installed")
    if reason:
        pytest.skip(reason)
    server = LocalOrthanc(modalities={TLS_LISTENER_AET: ("127.0.0.1", tls_listener_port)},
                          workdir=tmp_path_factory.mktemp("orthanc-tls"),
                          dicom_tls=TlsConfig(pki.server_cert, pki.server_key, pki.ca, require_client_cert=True),
                          https=TlsConfig(pki.server_cert, pki.server_key))
    server.start()
    yield server
    server.stop()


def _client(pki, **kw) -> TlsConfig:
    return TlsConfig(**{"cert": pki.client_cert, "key": pki.client_key, "ca": pki.ca, **kw})


def _in_orthanc(orthanc, study_uid) -> bool:
    return bool(requests.post(f"{orthanc.url}/tools/lookup", auth=orthanc.auth, data=study_uid).json())


@pytest.mark.skipif(ECHOSCU is None, reason="dcmtk (echoscu) is not installed")
def test_dcmtk_echoscu_needs_tls_and_our_ca(tls_orthanc, pki):
    base = [ECHOSCU, "-aec", tls_orthanc.aet, "-to", "5", "-ta", "5"]
    ok = subprocess.run([*base, "+tls", str(pki.client_key), str(pki.client_cert), "+cf", str(pki.ca),
                         "127.0.0.1", str(tls_orthanc.dicom_port)], capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    plain = subprocess.run([*base, "127.0.0.1", str(tls_orthanc.dicom_port)], capture_output=True, timeout=30)
    assert plain.returncode != 0


def test_c_store_over_tls_reaches_orthanc(tls_orthanc, pki, phantom_study):
    c_store(phantom_study, Destination(tls_orthanc.aet, "127.0.0.1", tls_orthanc.dicom_port), tls=_client(pki))
    assert _in_orthanc(tls_orthanc, phantom_study[0].StudyInstanceUID)


def test_wrong_ca_and_expired_certificate_say_so(tls_orthanc, pki, phantom_study, tmp_path, scorer):
    orthanc = Destination(tls_orthanc.aet, "127.0.0.1", tls_orthanc.dicom_port)
    with pytest.raises(PacsError, match="not signed by a trusted CA"):
        c_store(phantom_study, orthanc, tls=_client(pki, ca=pki.other_ca))
    port = free_port()
    expired = TlsConfig(pki.expired_cert, pki.expired_key, pki.ca, require_client_cert=False)
    with Listener(scorer, tmp_path / "spool", aet="EXPIRED", port=port, tls=expired):
        with pytest.raises(PacsError, match="certificate has expired"):
            c_store(phantom_study, Destination("EXPIRED", "127.0.0.1", port), tls=_client(pki))


def test_orthanc_pushes_over_tls_and_the_sr_returns_over_tls(tls_orthanc, pki, phantom_study, scorer, tmp_path,
                                                             tls_listener_port, monkeypatch, caplog):
    generate_key_file(tmp_path / "key")
    monkeypatch.setenv("MMDX_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("MMDX_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    study = phantom_study[0].StudyInstanceUID
    orthanc = Destination(tls_orthanc.aet, "127.0.0.1", tls_orthanc.dicom_port)
    c_store(phantom_study, orthanc, tls=_client(pki))
    server_tls = TlsConfig(pki.server_cert, pki.server_key, pki.ca, require_client_cert=True)
    with Listener(scorer, tmp_path / "spool", aet=TLS_LISTENER_AET, port=tls_listener_port, send_to=orthanc,
                  allowed_aets=[tls_orthanc.aet], quiet_period=0.5, tls=server_tls) as listener:
        orthanc_id = requests.post(f"{tls_orthanc.url}/tools/lookup", auth=tls_orthanc.auth, data=study).json()[0]["ID"]
        push = requests.post(f"{tls_orthanc.url}/modalities/{TLS_LISTENER_AET}/store", auth=tls_orthanc.auth,
                             json={"Resources": [orthanc_id], "Synchronous": True}, timeout=60)
        assert push.ok, push.text
        assert listener.wait_idle(60)
    done = tmp_path / "spool" / "done" / study
    files = list(done.glob("*.dcm"))
    assert files and all(f.read_bytes().startswith(b"MMDXENC") for f in files)  # spool and SR encrypted
    srs = DicomwebPacs(tls_orthanc.dicomweb_url, user=tls_orthanc.user, password=tls_orthanc.password,
                       ca_bundle=str(pki.ca)).structured_reports(study)
    assert len(srs) == 1
    events = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [e["action"] for e in events] == ["receive", "score", "send"] and events[0]["actor"] == tls_orthanc.aet
    assert verify(tmp_path / "audit.jsonl")["ok"] and study not in (tmp_path / "audit.jsonl").read_text()


def test_tls_listener_refuses_a_client_without_certificate(pki, scorer, tmp_path, phantom_study, caplog):
    caplog.set_level(logging.WARNING)
    port = free_port()
    server_tls = TlsConfig(pki.server_cert, pki.server_key, pki.ca, require_client_cert=True)
    with Listener(scorer, tmp_path / "spool", aet="MMDX", port=port, tls=server_tls):
        with pytest.raises(PacsError, match="client certificate|association"):
            c_store(phantom_study, Destination("MMDX", "127.0.0.1", port), tls=TlsConfig(ca=pki.ca))
        if ECHOSCU:
            ok = subprocess.run([ECHOSCU, "-aec", "MMDX", "-to", "5", "+tls", str(pki.client_key), str(pki.client_cert),
                                 "+cf", str(pki.ca), "127.0.0.1", str(port)], capture_output=True, timeout=30)
            assert ok.returncode == 0, ok.stderr
    assert "refused TLS connection from 127.0.0.1: the client sent no certificate" in caplog.text


def test_https_dicomweb_verifies_with_the_ca_given_despite_requests_ca_bundle(tls_orthanc, pki, phantom_study,
                                                                            scorer, monkeypatch, caplog):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", requests.certs.where())  # a bundle without our CA
    monkeypatch.setenv("CURL_CA_BUNDLE", requests.certs.where())
    monkeypatch.delenv("MMDX_ALLOW_HTTP_AUTH")
    monkeypatch.setenv("MMDX_PACS_USER", tls_orthanc.user)
    monkeypatch.setenv("MMDX_PACS_PASSWORD", tls_orthanc.password)
    c_store(phantom_study, Destination(tls_orthanc.aet, "127.0.0.1", tls_orthanc.dicom_port), tls=_client(pki))
    study = str(phantom_study[0].StudyInstanceUID)
    url = tls_orthanc.dicomweb_url
    with pytest.raises(PacsError, match="not signed by a trusted CA"):
        score_pacs(url, studies=[study], scorer=scorer)
    caplog.set_level(logging.INFO)
    summary = score_pacs(url, studies=[study], scorer=scorer, ca_bundle=str(pki.ca))
    assert summary["scored"] == 1
    assert score_pacs(url, studies=[study], scorer=scorer, verify=False)["skipped"] == 1
    assert "TLS VERIFICATION IS OFF" in caplog.text
    assert tls_orthanc.password not in caplog.text + json.dumps(summary)


def test_cli_with_a_password_on_the_command_line_warns_and_never_shows_it(tls_orthanc, pki, tiny_model_dir,
                                                                          phantom_study, tmp_path, monkeypatch,
                                                                          caplog, capfd):
    c_store(phantom_study, Destination(tls_orthanc.aet, "127.0.0.1", tls_orthanc.dicom_port), tls=_client(pki))
    monkeypatch.setenv("MMDX_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    monkeypatch.setenv("MMDX_KEY_FILE", "")
    umask = os.umask(0o022)
    caplog.set_level(logging.DEBUG)
    try:
        argv = ["pacs", "score", "--url", tls_orthanc.dicomweb_url, "--model", str(tiny_model_dir), "--since",
                "19000101", "--user", tls_orthanc.user, "--password", tls_orthanc.password, "--ca-bundle", str(pki.ca)]
        assert main(argv) == 0
        monkeypatch.setenv("MMDX_ALLOW_HTTP_AUTH", "0")
        assert main([*argv[:3], tls_orthanc.url + "/dicom-web", *argv[4:]]) == 2  # plain http: refused
    finally:
        os.umask(umask)
    out, err = capfd.readouterr()
    assert "visible in `ps`" in caplog.text and "refusing to send credentials over plain http://" in err
    everything = caplog.text + out + err + (tmp_path / "audit.jsonl").read_text()
    assert json.loads(out.splitlines()[0])["scored"] >= 1 and tls_orthanc.password not in everything
    assert {"read", "score", "send"} <= {json.loads(line)["action"] for line in everything.splitlines()
                                        if line.startswith('{"time"')}


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_https_with_an_expired_certificate_says_so(tls_orthanc, pki):
    port = free_port()
    listen = (f"OPENSSL-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,verify=0,"
              f"cert={pki.expired_cert},key={pki.expired_key}")
    terminator = subprocess.Popen(["socat", listen, f"TCP:127.0.0.1:{tls_orthanc.http_port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _listening(port):
            time.sleep(0.05)
        pacs = DicomwebPacs(f"https://localhost:{port}/dicom-web", user=tls_orthanc.user,
                            password=tls_orthanc.password, ca_bundle=str(pki.ca), retries=0)
        with pytest.raises(PacsError, match="certificate has expired"):
            pacs.find_studies(modalities=("DX",))
    finally:
        terminator.terminate()
        terminator.wait(10)
