"""Encryption at rest: AES-256-GCM (``cryptography``) with a versioned header and rotating keys.

Opt-in: encryption is on when a key file is named (``MMDX_KEY_FILE`` or ``mmdx --key-file``);
``mmdx keygen --out KEY`` makes one. A key file holds one key per line, the first being the current
one (used to encrypt); the others still decrypt what they wrote, so keys can rotate::

    mmdx-aes256gcm <key id> <base64 of 32 random bytes>

The key id is the first 8 bytes of the SHA-256 of the key (hex), so a file records which key it
needs without revealing it. An encrypted file (or record) is::

    b"MMDXENC" | version (1 byte, 1) | key id (8 bytes) | nonce (12 bytes) | ciphertext + GCM tag

The header (magic, version, key id, nonce) is authenticated as associated data: a changed byte
anywhere, a wrong key or a truncated file raises :class:`DecryptionError`, never garbage.
JSON-lines logs are encrypted line by line (``{"mmdx_enc": "<base64 blob>"}``) so that they keep
their append-and-fsync crash safety. ``cryptography`` is a well-kept wrapper of OpenSSL; nothing
here is a home-made cipher. This module is at the bottom of the layering (no ``multimodal``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from preprocessing.errors import MmdxError

KEY_FILE_ENV = "MMDX_KEY_FILE"
MAGIC = b"MMDXENC"
VERSION = 1
KEY_ID_BYTES = 8
NONCE_BYTES = 12
HEADER_BYTES = len(MAGIC) + 1 + KEY_ID_BYTES + NONCE_BYTES
KEY_LINE_TAG = "mmdx-aes256gcm"
LINE_FIELD = "mmdx_enc"


class DecryptionError(MmdxError):
    """An encrypted file could not be decrypted: wrong key, tampered or truncated; names the file."""

    def __init__(self, path: str | Path | None, reason: str):
        self.path = str(path) if path is not None else "<memory>"
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def key_id(key: bytes) -> str:
    """The public id of a key: the first 8 bytes of its SHA-256, as hex."""
    return hashlib.sha256(key).digest()[:KEY_ID_BYTES].hex()


@dataclass(frozen=True)
class Keyring:
    """The keys of one key file; ``keys[0]`` encrypts, every key decrypts what it wrote."""

    keys: tuple[bytes, ...]
    source: str = "<memory>"

    @classmethod
    def load(cls, path: str | Path) -> Keyring:
        """Read a key file; refuses one that others can read (it must be 0600 or stricter)."""
        path = Path(path)
        try:
            mode = path.stat().st_mode
            text = path.read_text()
        except OSError as err:
            raise DecryptionError(path, f"cannot read the key file ({err.strerror})") from err
        if mode & 0o077:
            raise DecryptionError(path, f"key file permissions are {oct(mode & 0o777)}; run chmod 600 on it")
        keys = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split()
            try:
                key = base64.b64decode(parts[2], validate=True) if len(parts) == 3 else b""
            except binascii.Error:
                key = b""
            if parts[0] != KEY_LINE_TAG or len(key) != 32 or key_id(key) != parts[1]:
                raise DecryptionError(path, f"line {number} is not a key line ({KEY_LINE_TAG} <id> <base64 key>)")
            keys.append(key)
        if not keys:
            raise DecryptionError(path, "the key file holds no key")
        return cls(tuple(keys), str(path))

    @classmethod
    def from_env(cls) -> Keyring | None:
        """The keyring named by ``MMDX_KEY_FILE``, or None when encryption is off."""
        path = os.environ.get(KEY_FILE_ENV)
        return cls.load(path) if path else None

    @property
    def current_id(self) -> str:
        return key_id(self.keys[0])

    def encrypt(self, data: bytes) -> bytes:
        """``data`` encrypted with the current key (a fresh random nonce each call)."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        header = MAGIC + bytes([VERSION]) + bytes.fromhex(self.current_id) + os.urandom(NONCE_BYTES)
        return header + AESGCM(self.keys[0]).encrypt(header[-NONCE_BYTES:], data, header)

    def decrypt(self, blob: bytes, source: str | Path | None = None) -> bytes:
        """The clear bytes of ``blob``; raises DecryptionError naming ``source`` and the reason."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if not is_encrypted(blob):
            raise DecryptionError(source, "not an mmdx-encrypted file")
        if len(blob) < HEADER_BYTES + 16:
            raise DecryptionError(source, "encrypted file is truncated")
        if blob[len(MAGIC)] != VERSION:
            raise DecryptionError(source, f"unknown encryption format version {blob[len(MAGIC)]}")
        header = blob[:HEADER_BYTES]
        wanted = header[len(MAGIC) + 1: len(MAGIC) + 1 + KEY_ID_BYTES].hex()
        key = next((k for k in self.keys if key_id(k) == wanted), None)
        if key is None:
            raise DecryptionError(source, f"encrypted with key {wanted}, which is not in {self.source} "
                                          f"(it holds {', '.join(key_id(k) for k in self.keys)})")
        try:
            return AESGCM(key).decrypt(header[-NONCE_BYTES:], blob[HEADER_BYTES:], header)
        except InvalidTag:
            raise DecryptionError(source, "authentication failed: the file was modified or truncated") from None

    def encrypt_line(self, line: str) -> str:
        """One JSON line (no newline) as an encrypted JSON line."""
        return json.dumps({LINE_FIELD: base64.b64encode(self.encrypt(line.encode())).decode()})

    def decrypt_record(self, record: dict, source: str) -> dict:
        """A record read from a JSON-lines file, decrypted when it is an encrypted line."""
        return json.loads(self.decrypt(base64.b64decode(record[LINE_FIELD]), source)) if is_encrypted_record(record) \
            else record


def is_encrypted(blob: bytes) -> bool:
    return blob.startswith(MAGIC)


def is_encrypted_record(record: dict) -> bool:
    return len(record) == 1 and LINE_FIELD in record


def generate_key_file(path: str | Path, rotate: bool = False) -> str:
    """Write a new key file (mode 0600); with ``rotate`` put a new current key in front of an existing
    file's keys (old files stay readable). Returns the new key's id. Never overwrites a key."""
    path = Path(path)
    key = secrets.token_bytes(32)
    line = f"{KEY_LINE_TAG} {key_id(key)} {base64.b64encode(key).decode()}\n"
    if rotate:
        old = Keyring.load(path)
        text = line + "".join(f"{KEY_LINE_TAG} {key_id(k)} {base64.b64encode(k).decode()}\n" for k in old.keys)
        write_private(path.with_name(path.name + ".tmp"), text.encode())
        os.replace(path.with_name(path.name + ".tmp"), path)
        return key_id(key)
    if path.exists():
        raise MmdxError(f"{path}: a key file exists already; use --rotate to add a new current key to it")
    write_private(path, line.encode())
    return key_id(key)


def write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only (0600) and write ``data``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def read_file(path: str | Path, keyring: Keyring | None) -> bytes:
    """A file's clear bytes: decrypted when it is encrypted (then a keyring is required)."""
    data = Path(path).read_bytes()
    if not is_encrypted(data):
        return data
    if keyring is None:
        raise DecryptionError(path, f"the file is encrypted; set {KEY_FILE_ENV} or pass --key-file")
    return keyring.decrypt(data, path)


def seal_file(path: str | Path, keyring: Keyring | None) -> None:
    """Encrypt a file in place (a temporary file and an atomic rename); nothing when ``keyring`` is None."""
    if keyring is None:
        return
    path = Path(path)
    tmp = path.with_name(path.name + ".enc-tmp")
    tmp.write_bytes(keyring.encrypt(path.read_bytes()))
    os.replace(tmp, path)


def decrypt_file(src: str | Path, out: str | Path, keyring: Keyring) -> dict:
    """Write the clear content of an encrypted file (or of a JSON-lines file with encrypted lines) to
    ``out`` (mode 0600); returns ``{"source", "out", "format", "records"?}`` (``mmdx decrypt``)."""
    src, out = Path(src), Path(out)
    data = src.read_bytes()
    if is_encrypted(data):
        write_private(out, keyring.decrypt(data, src))
        return {"source": str(src), "out": str(out), "format": "file"}
    lines = []
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        try:
            record = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or not is_encrypted_record(record):
            raise DecryptionError(src, f"line {number} is not an encrypted record: not an mmdx-encrypted file")
        lines.append(json.dumps(keyring.decrypt_record(record, f"{src}:{number}"), separators=(",", ":")))
    write_private(out, "".join(line + "\n" for line in lines).encode())
    return {"source": str(src), "out": str(out), "format": "jsonl", "records": len(lines)}
