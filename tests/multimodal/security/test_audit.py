"""The audit trail: hash chain, tamper detection naming the line, ATNA syslog, the CLI."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from multimodal.cli import main
from multimodal.security.audit import AuditError, AuditLog, hash_uid, verify

MODEL = {"name": "tiny", "version": "1", "sha256": "ab" * 32, "ignored": "x"}


def _write(path, n=4):
    audit = AuditLog(path)
    for i in range(n):
        audit.record("score", study_uid=f"1.2.3.{i}", model=MODEL, actor="ORTHANC")
    return path.read_text().splitlines()


def test_events_chain_and_hide_the_uid(tmp_path):
    lines = _write(tmp_path / "audit.jsonl")
    events = [json.loads(line) for line in lines]
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert events[1]["prev"] == events[0]["hash"] and events[0]["study"] == hash_uid("1.2.3.0")
    assert "1.2.3.0" not in "".join(lines) and "ignored" not in events[0]["model"]
    assert (tmp_path / "audit.jsonl").stat().st_mode & 0o777 == 0o600
    assert verify(tmp_path / "audit.jsonl") == {"log": str(tmp_path / "audit.jsonl"), "lines": 4, "ok": True,
                                                "problems": []}


def test_edited_removed_and_reordered_lines_are_named(tmp_path):
    path = tmp_path / "audit.jsonl"
    lines = _write(path)
    path.write_text("\n".join([lines[0], lines[1].replace('"success"', '"failure"'), *lines[2:]]) + "\n")
    assert verify(path)["problems"][0].startswith("line 2: its content does not match")
    path.write_text("\n".join([lines[0], *lines[2:]]) + "\n")
    assert verify(path)["problems"] == [verify(path)["problems"][0]] and "line 2: seq 3" in verify(path)["problems"][0]
    path.write_text("\n".join([lines[0], lines[2], lines[1], lines[3]]) + "\n")
    assert [p.split(":")[0] for p in verify(path)["problems"]] == ["line 2", "line 3", "line 4"]


def test_unknown_action_is_refused(tmp_path):
    with pytest.raises(AuditError, match="unknown audit action"):
        AuditLog(tmp_path / "a.jsonl").record("peek")


def test_events_also_go_to_syslog_as_atna_messages(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        AuditLog(tmp_path / "a.jsonl", syslog=f"127.0.0.1:{server.getsockname()[1]}").record(
            "send", study_uid="1.2.3", model=MODEL, actor="MMDX")
        message = server.recv(65536).decode()
    assert "<AuditMessage>" in message and 'EventActionCode="R"' in message and hash_uid("1.2.3") in message
    assert "1.2.3\"" not in message


def test_cli_verify_exit_codes(tmp_path, capsys):
    path = tmp_path / "audit.jsonl"
    lines = _write(path)
    assert main(["audit", "verify", str(path)]) == 0
    path.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    assert main(["audit", "verify", str(path)]) == 1
    assert "line 2" in capsys.readouterr().out


def test_concurrent_writers_keep_one_chain(tmp_path):
    audit = AuditLog(tmp_path / "a.jsonl")
    threads = [threading.Thread(target=lambda: [audit.record("receive", "1.2") for _ in range(10)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert verify(tmp_path / "a.jsonl")["ok"] and verify(tmp_path / "a.jsonl")["lines"] == 40


def test_settings_set_the_umask_and_check_the_key_file_first(tmp_path, monkeypatch):
    import os

    from multimodal.security import settings
    from preprocessing.crypto import DecryptionError

    monkeypatch.setenv("MMDX_KEY_FILE", "")
    monkeypatch.setenv("MMDX_AUDIT_LOG", "")
    old = os.umask(0o022)
    try:
        settings.apply(audit_log=str(tmp_path / "audit.jsonl"))
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "f").write_text("x")
        assert (tmp_path / "out").stat().st_mode & 0o777 == 0o700
        assert (tmp_path / "out" / "f").stat().st_mode & 0o777 == 0o600
        assert os.environ["MMDX_AUDIT_LOG"] == str(tmp_path / "audit.jsonl")
        with pytest.raises(DecryptionError, match="cannot read the key file"):
            settings.apply(key_file=str(tmp_path / "missing.key"))
    finally:
        os.umask(old)
