"""`mmdx score` with a key file and an audit log: results and SRs encrypted, resumable, decryptable,
every line naming the model's hash, the run in the audit trail."""

from __future__ import annotations

import json
import os

import pydicom
import pytest

from multimodal.cli import main
from multimodal.models.model_card import weights_sha256
from preprocessing.crypto import DecryptionError, generate_key_file


@pytest.fixture
def cli_settings(monkeypatch):
    """`mmdx --key-file/--audit-log` export variables and set the umask: undone after the test."""
    for name in ("MMDX_KEY_FILE", "MMDX_AUDIT_LOG"):
        monkeypatch.setenv(name, "")
    umask = os.umask(0o022)
    yield
    os.umask(umask)


def test_encrypted_scoring_round_trip(tiny_model_dir, phantom_dir, tmp_path, monkeypatch, capsys, cli_settings):
    key, out, srs, log = tmp_path / "key", tmp_path / "results.jsonl", tmp_path / "sr", tmp_path / "audit.jsonl"
    assert main(["keygen", "--out", str(key)]) == 0
    assert json.loads(capsys.readouterr().out)["key_file"] == str(key)
    argv = ["--key-file", str(key), "--audit-log", str(log), "score", "--model", str(tiny_model_dir),
            "--input", str(phantom_dir / "dicom"), "--out", str(out), "--sr-dir", str(srs), "--workers", "0",
            "--no-findings", "--quiet"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["scored"] == 8
    text = out.read_text()
    assert "study_id" not in text and text.count("\n") == 8
    sr_file = next(srs.glob("*.dcm"))
    assert sr_file.read_bytes().startswith(b"MMDXENC") and oct(out.stat().st_mode & 0o777) == "0o600"
    assert main(argv) == 0  # resumed: the encrypted log is read back, nothing is scored twice
    assert json.loads(capsys.readouterr().out)["skipped"] == 8

    assert main(["--key-file", str(key), "decrypt", str(out), "--out", str(tmp_path / "clear.jsonl")]) == 0
    records = [json.loads(line) for line in (tmp_path / "clear.jsonl").read_text().splitlines()]
    assert {r["model"]["sha256"] for r in records} == {weights_sha256(tiny_model_dir)}
    assert main(["--key-file", str(key), "decrypt", str(sr_file), "--out", str(tmp_path / "sr.dcm")]) == 0
    texts = set()
    pydicom.dcmread(tmp_path / "sr.dcm").walk(lambda ds, elem: texts.add(elem.value) if elem.keyword == "TextValue" else None)
    assert f"sha256={weights_sha256(tiny_model_dir)}" in texts
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["action"] for e in events] == ["score"] * 8 + ["export", "export"]  # the resumed run scored nothing
    assert len({e["study"] for e in events[:8]}) == 8 and events[0]["model"]["sha256"] == weights_sha256(tiny_model_dir)

    generate_key_file(tmp_path / "other")
    assert main(["--key-file", str(tmp_path / "other"), "decrypt", str(sr_file), "--out", str(tmp_path / "x")]) == 2
    assert "not in" in capsys.readouterr().err
    blob = bytearray(sr_file.read_bytes())
    blob[100] ^= 1
    sr_file.write_bytes(bytes(blob))
    assert main(["--key-file", str(key), "decrypt", str(sr_file), "--out", str(tmp_path / "y")]) == 2
    assert "modified or truncated" in capsys.readouterr().err
    monkeypatch.delenv("MMDX_KEY_FILE")
    from multimodal.inference.results import read_jsonl

    with pytest.raises(DecryptionError, match="encrypted"):
        list(read_jsonl(out))
