"""Encryption at rest: key files, AES-256-GCM round trips, rotation, wrong key and tampering."""

from __future__ import annotations

import json
import os

import pytest

from preprocessing.crypto import DecryptionError, Keyring, decrypt_file, generate_key_file, read_file, seal_file


@pytest.fixture
def keyring(tmp_path) -> Keyring:
    generate_key_file(tmp_path / "key")
    return Keyring.load(tmp_path / "key")


def test_key_file_is_private_and_never_overwritten(tmp_path):
    kid = generate_key_file(tmp_path / "key")
    assert os.stat(tmp_path / "key").st_mode & 0o777 == 0o600
    assert Keyring.load(tmp_path / "key").current_id == kid
    with pytest.raises(Exception, match="exists already"):
        generate_key_file(tmp_path / "key")
    os.chmod(tmp_path / "key", 0o644)
    with pytest.raises(DecryptionError, match="chmod 600"):
        Keyring.load(tmp_path / "key")


def test_round_trip_hides_the_content_and_uses_fresh_nonces(keyring):
    blob = keyring.encrypt(b"PatientName=DOE^JANE")
    assert b"DOE" not in blob and keyring.decrypt(blob) == b"PatientName=DOE^JANE"
    assert keyring.encrypt(b"x") != keyring.encrypt(b"x")


def test_wrong_key_and_tampering_give_clear_errors(tmp_path, keyring):
    blob = keyring.encrypt(b"secret pixels")
    generate_key_file(tmp_path / "other")
    with pytest.raises(DecryptionError, match="not in .*other"):
        Keyring.load(tmp_path / "other").decrypt(blob, "x.enc")
    for i in (5, 20, len(blob) - 1):  # magic, nonce, tag
        bad = bytearray(blob)
        bad[i] ^= 1
        with pytest.raises(DecryptionError):
            keyring.decrypt(bytes(bad), "x.enc")
    with pytest.raises(DecryptionError, match="modified or truncated"):
        keyring.decrypt(blob[:-3], "x.enc")


def test_rotation_keeps_old_files_readable(tmp_path):
    generate_key_file(tmp_path / "key")
    old = Keyring.load(tmp_path / "key")
    blob = old.encrypt(b"before rotation")
    new_id = generate_key_file(tmp_path / "key", rotate=True)
    rotated = Keyring.load(tmp_path / "key")
    assert rotated.current_id == new_id != old.current_id
    assert rotated.decrypt(blob) == b"before rotation"
    assert rotated.decrypt(rotated.encrypt(b"after"))[:5] == b"after"


def test_sealed_file_needs_the_key_and_decrypts_back(tmp_path, keyring):
    path = tmp_path / "sr.dcm"
    path.write_bytes(b"DICM report")
    seal_file(path, keyring)
    assert b"report" not in path.read_bytes()
    with pytest.raises(DecryptionError, match="MMDX_KEY_FILE"):
        read_file(path, None)
    assert decrypt_file(path, tmp_path / "clear.dcm", keyring)["format"] == "file"
    assert (tmp_path / "clear.dcm").read_bytes() == b"DICM report"


def test_encrypted_json_lines_decrypt_line_by_line(tmp_path, keyring):
    records = [{"study_id": "a", "p": 0.5}, {"study_id": "b", "p": 0.25}]
    (tmp_path / "r.jsonl").write_text("".join(keyring.encrypt_line(json.dumps(r)) + "\n" for r in records))
    assert "study_id" not in (tmp_path / "r.jsonl").read_text()
    assert decrypt_file(tmp_path / "r.jsonl", tmp_path / "clear.jsonl", keyring)["records"] == 2
    assert [json.loads(line) for line in (tmp_path / "clear.jsonl").read_text().splitlines()] == records
    (tmp_path / "plain.txt").write_text("not encrypted\n")
    with pytest.raises(DecryptionError, match="not an mmdx-encrypted file"):
        decrypt_file(tmp_path / "plain.txt", tmp_path / "o", keyring)
