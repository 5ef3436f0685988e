"""DIMSE: the Storage SCP receives a study, scores it from its spool and C-STOREs the SR to Orthanc."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from multimodal.pacs import PacsError
from multimodal.pacs.dicomweb import DicomwebPacs
from multimodal.pacs.listener import Destination, Listener, c_store, listen
from multimodal.pacs.scoring import sr_algorithm

from .conftest import LISTENER_AET, c_echo


def _wait_for_sr(orthanc, study_uid: str, timeout: float = 60.0) -> list:
    """Poll QIDO-RS until the study holds an SR (returns the SR metadata) or fail."""
    pacs = DicomwebPacs(orthanc.dicomweb_url, user=orthanc.user, password=orthanc.password)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        srs = pacs.structured_reports(study_uid)
        if srs:
            return srs
        time.sleep(0.2)
    pytest.fail(f"no SR arrived in Orthanc for study {study_uid} within {timeout:.0f} s")


def _listener(tmp_path, scorer, orthanc, listener_port, **kw) -> Listener:
    return Listener(scorer, tmp_path / "spool", aet=LISTENER_AET, port=listener_port,
                    send_to=Destination(orthanc.aet, "127.0.0.1", orthanc.dicom_port), quiet_period=0.5, **kw)


def test_c_echo_answers_for_orthanc_and_listener(orthanc, tmp_path, scorer, listener_port):
    assert c_echo(orthanc.dicom_port, orthanc.aet) == 0
    with _listener(tmp_path, scorer, orthanc, listener_port):
        assert c_echo(listener_port, LISTENER_AET) == 0


def test_orthanc_push_is_scored_and_sr_arrives(orthanc, tmp_path, scorer, listener_port, phantom_study):
    """The PACS pushes a study to the listener (C-STORE); the SR comes back by C-STORE."""
    study = str(phantom_study[0].StudyInstanceUID)
    c_store(phantom_study, Destination(orthanc.aet, "127.0.0.1", orthanc.dicom_port))
    with _listener(tmp_path, scorer, orthanc, listener_port) as listener:
        orthanc_id = requests.post(f"{orthanc.url}/tools/lookup", auth=orthanc.auth, data=study).json()[0]["ID"]
        push = requests.post(f"{orthanc.url}/modalities/{LISTENER_AET}/store", auth=orthanc.auth,
                             json={"Resources": [orthanc_id], "Synchronous": True}, timeout=30)
        assert push.ok, push.text
        srs = _wait_for_sr(orthanc, study)
        assert listener.wait_idle(30)
    assert len(srs) == 1 and sr_algorithm(srs[0]) == ("mmdx-pacs-test", "0.0.1")
    done = tmp_path / "spool" / "done" / study
    assert sorted(p.name for p in done.glob("*.dcm") if not p.name.startswith("sr-")) == \
        sorted(f"{ds.SOPInstanceUID}.dcm" for ds in phantom_study)
    assert not (tmp_path / "spool" / "incoming" / study).exists()


def test_calling_aet_not_allowed_is_rejected(orthanc, tmp_path, scorer, listener_port):
    with _listener(tmp_path, scorer, orthanc, listener_port, allowed_aets=["PACS1"]):
        assert c_echo(listener_port, LISTENER_AET, calling_aet="INTRUDER") is None
        assert c_echo(listener_port, LISTENER_AET, calling_aet="PACS1") == 0


def test_new_study_beyond_max_queue_is_refused_until_there_is_room(orthanc, tmp_path, scorer, listener_port,
                                                                     phantom_study):
    second = copy.deepcopy(phantom_study)
    for ds in second:
        ds.StudyInstanceUID = "1.2.3.4.5"
    here = Destination(LISTENER_AET, "127.0.0.1", listener_port)
    with Listener(scorer, tmp_path / "spool", aet=LISTENER_AET, port=listener_port, quiet_period=3600, max_queue=1):
        c_store(phantom_study, here)
        with pytest.raises(PacsError, match="0xA700"):
            c_store(second, here)
    assert not (tmp_path / "spool" / "incoming" / "1.2.3.4.5").exists()


def test_unreadable_study_goes_to_failed_with_reason(orthanc, tmp_path, listener_port, phantom_study):
    def broken(datasets):
        raise ValueError("decoder exploded")

    with _listener(tmp_path, broken, orthanc, listener_port) as listener:
        c_store(phantom_study, Destination(LISTENER_AET, "127.0.0.1", listener_port))
        assert listener.wait_idle(30)
    failed = tmp_path / "spool" / "failed" / str(phantom_study[0].StudyInstanceUID)
    assert "decoder exploded" in (failed / "error.txt").read_text()
    assert len(list(failed.glob("*.dcm"))) == len(phantom_study)


def test_study_received_before_a_kill_is_scored_after_restart(orthanc, tmp_path, listener_port, tiny_model_dir,
                                                              phantom_study):
    """`mmdx listen` is SIGKILLed after acknowledging a study but before scoring it (long quiet
    period); `listen()` restarted on the same spool scores it, the SR reaches Orthanc, and SIGTERM
    then stops the listener cleanly."""
    spool, study = tmp_path / "spool", str(phantom_study[0].StudyInstanceUID)
    proc = subprocess.Popen([sys.executable, "-m", "multimodal.cli", "listen", "--model", str(tiny_model_dir),
                             "--aet", LISTENER_AET, "--port", str(listener_port), "--spool", str(spool),
                             "--quiet-period", "3600"])
    try:
        deadline = time.monotonic() + 180
        while c_echo(listener_port, LISTENER_AET) != 0:
            assert proc.poll() is None and time.monotonic() < deadline, "mmdx listen did not come up"
            time.sleep(0.3)
        c_store(phantom_study, Destination(LISTENER_AET, "127.0.0.1", listener_port))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(list((spool / "incoming" / study).glob("*.dcm"))) == len(phantom_study)

    arrived = []

    def wait_then_sigterm():
        try:
            arrived.extend(_wait_for_sr(orthanc, study))
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=wait_then_sigterm)
    watcher.start()
    listen(tiny_model_dir, aet=LISTENER_AET, port=listener_port, spool=spool, quiet_period=0.5,
           send_to=f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}")  # returns on SIGTERM
    watcher.join()
    assert len(arrived) == 1 and sr_algorithm(arrived[0]) == ("mmdx-pacs-test", "0.0.1")
    assert not (spool / "incoming" / study).exists()
