"""Signed resume state: Accelerate's ``load_state`` unpickles files, so only load what we wrote.

``accelerate.Accelerator.load_state`` reads ``custom_checkpoint_*.pkl``, the RNG states and the
optimizer with ``torch.load(weights_only=False)``: a crafted file in a run directory would run
code on ``--resume``. :func:`sign_directory` writes ``mmdx-signature.json`` with an HMAC-SHA256 of
every file (name and bytes) under a key that lives outside the run directory, and
:func:`verify_directory` refuses a state folder with a missing, changed, added or unsigned file
before anything is unpickled. The key is ``MMDX_STATE_KEY`` (a file path) or
``$XDG_CONFIG_HOME/mmdx/state.key`` (``~/.config``), made on first use, mode 0600; processes that
resume one run (other nodes, a new machine) must see the same key file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from preprocessing.errors import MmdxError

STATE_KEY_ENV = "MMDX_STATE_KEY"
SIGNATURE_NAME = "mmdx-signature.json"


class UnsignedStateError(MmdxError):
    """A resume state does not verify; names the folder and what is wrong."""

    def __init__(self, folder: str | Path, reason: str):
        super().__init__(f"{folder}: {reason}; refusing to load it (it would be unpickled)")


def state_key_path() -> Path:
    if os.environ.get(STATE_KEY_ENV):
        return Path(os.environ[STATE_KEY_ENV])
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "mmdx" / "state.key"


def _key(create: bool) -> bytes:
    path = state_key_path()
    if not path.is_file():
        if not create:
            raise UnsignedStateError(path, "the state-signing key is missing")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def _digests(folder: Path, key: bytes) -> dict[str, str]:
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != SIGNATURE_NAME):
        name = path.relative_to(folder).as_posix()
        mac = hmac.new(key, name.encode() + b"\0", hashlib.sha256)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                mac.update(chunk)
        out[name] = mac.hexdigest()
    return out


def sign_directory(folder: str | Path) -> Path:
    """Write the signature of every file in ``folder``; returns the signature file."""
    folder = Path(folder)
    target = folder / SIGNATURE_NAME
    target.write_text(json.dumps({"version": 1, "files": _digests(folder, _key(create=True))}, indent=1))
    return target


def verify_directory(folder: str | Path) -> None:
    """Raise UnsignedStateError unless ``folder`` holds exactly the files it was signed with, unchanged."""
    folder = Path(folder)
    try:
        signed = json.loads((folder / SIGNATURE_NAME).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UnsignedStateError(folder, f"no valid {SIGNATURE_NAME}") from None
    actual = _digests(folder, _key(create=False))
    for name in sorted(set(signed) | set(actual)):
        if name not in signed:
            raise UnsignedStateError(folder, f"{name} was added after the state was signed")
        if name not in actual:
            raise UnsignedStateError(folder, f"{name} is missing")
        if not hmac.compare_digest(signed[name], actual[name]):
            raise UnsignedStateError(folder, f"{name} was changed, or signed with another key ({state_key_path()})")
