"""Who may call the listener: AE titles with permissions, source networks, the called AE title."""

from __future__ import annotations

import logging

import pytest

from multimodal.pacs import PacsError
from multimodal.pacs.access import AccessPolicy
from multimodal.pacs.listener import Destination, Listener, c_store
from multimodal.pacs.orthanc import free_port

from .conftest import c_echo


def test_policy_reasons_and_permissions():
    policy = AccessPolicy.parse(["PACS", "MODALITY:store"], ["10.1.0.0/16"])
    assert policy.refusal("PACS", "MMDX", "MMDX", "10.1.2.3") is None
    assert "not allowed" in policy.refusal("OTHER", "MMDX", "MMDX", "10.1.2.3")
    assert "outside the allowed networks" in policy.refusal("PACS", "MMDX", "MMDX", "192.168.0.1")
    assert "called AE title 'WRONG'" in policy.refusal("PACS", "WRONG", "MMDX", "10.1.2.3")
    assert policy.may_receive_results("PACS") and not policy.may_receive_results("MODALITY")
    with pytest.raises(PacsError, match="AET:store"):
        AccessPolicy.parse(["PACS:admin"])
    with pytest.raises(PacsError, match="not a CIDR"):
        AccessPolicy.parse(None, ["10.1.0.0/99"])


def test_network_bind_without_an_allow_list_is_refused(tmp_path, scorer):
    with pytest.raises(PacsError, match="needs an allow-list"):
        Listener(scorer, tmp_path / "spool", host="0.0.0.0")
    Listener(scorer, tmp_path / "spool", host="0.0.0.0", allowed_networks=["10.0.0.0/8"])


def test_refused_associations_are_logged_with_the_reason(tmp_path, scorer, caplog):
    port = free_port()
    caplog.set_level(logging.WARNING)
    with Listener(scorer, tmp_path / "spool", aet="MMDX", port=port, allowed_networks=["10.0.0.0/8"]):
        assert c_echo(port, "MMDX") is None
    with Listener(scorer, tmp_path / "spool", aet="MMDX", port=port, allowed_aets=["ECHOSCU"]):
        assert c_echo(port, "NOT-MMDX") is None
        assert c_echo(port, "MMDX") == 0
    assert "outside the allowed networks" in caplog.text and "called AE title 'NOT-MMDX'" in caplog.text


def test_store_only_sender_gets_its_study_scored_but_no_sr_sent(tmp_path, scorer, phantom_study):
    port = free_port()
    nowhere = Destination("PACS", "127.0.0.1", free_port())  # sending there would fail and keep the study
    with Listener(scorer, tmp_path / "spool", aet="MMDX", port=port, send_to=nowhere,
                  allowed_aets=["MODALITY:store"], quiet_period=0.2) as listener:
        c_store(phantom_study, Destination("MMDX", "127.0.0.1", port), calling_aet="MODALITY")
        assert listener.wait_idle(60)
    done = tmp_path / "spool" / "done" / str(phantom_study[0].StudyInstanceUID)
    assert list(done.glob("sr-*.dcm")) and (done / "calling-aet.txt").read_text() == "MODALITY"
