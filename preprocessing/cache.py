"""On-disk cache of decoded, preprocessed radiographs, so that epochs after the first do not decode.

Layout: ``<root>/<config hash>/<key[:2]>/<key>.npz`` holding ``pixels`` (float16 ``[H, W]``:
half the disk of float32, steps of at most 2**-11 in [0, 1], finer than any 8-bit display) and
``meta`` (the :meth:`Radiograph.metadata` JSON). The DICOM header (``Radiograph.dataset``) is not
cached.

Keys: by default the file's absolute path + size + modification time (cheap: one ``stat``); an
edited file gets a new key, a file replaced with identical size and mtime does not. With
``content_hash=True`` the key is the SHA-256 of the file's bytes (a full read per lookup, but
immune to copies and touches). Either way the key also covers ``config`` (e.g. target size) and the
cache format version, so a change of preprocessing never serves stale arrays.

Concurrency: entries are written to a temporary file in the same directory and moved into place
with ``os.replace`` (atomic on POSIX and Windows), so DataLoader workers racing on the same file
both succeed and readers never see half a file.

Encryption at rest: with a keyring (``MMDX_KEY_FILE``, see :mod:`preprocessing.crypto`) entries are
written AES-256-GCM encrypted and read back transparently; a tampered entry or one written with a
key that is not in the keyring raises :class:`~preprocessing.crypto.DecryptionError` (it is not
silently re-decoded: a changed cache file is a security event, not a cache miss). Without a
keyring an encrypted entry is unreadable and is decoded again (and stored in clear).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from preprocessing.crypto import Keyring, is_encrypted
from preprocessing.radiograph import Radiograph

CACHE_FORMAT = 1


class PreprocessCache:
    """Cache of ``read_radiograph(path, target_size)`` results under ``root`` (see module doc).

    ``config``: everything that changes the cached pixels, JSON-serialisable; its ``target_size``
    (px or None) and ``fit`` (``short``/``long``, default ``short``) keys are passed to the reader.
    ``keyring``: encrypt entries (default: the keyring of ``MMDX_KEY_FILE``, None when it is unset).
    """

    def __init__(self, root: str | os.PathLike[str], config: Mapping[str, Any] | None = None,
                 content_hash: bool = False, keyring: Keyring | None = None):
        self.root = Path(root)
        self.keyring = keyring or Keyring.from_env()
        self.config = dict(config or {})
        self.content_hash = content_hash
        blob = json.dumps({"format": CACHE_FORMAT, **self.config}, sort_keys=True, default=str)
        self.config_hash = hashlib.sha256(blob.encode()).hexdigest()[:16]

    def key(self, path: str | os.PathLike[str]) -> str:
        """Hex key of ``path`` under this cache's config."""
        path = Path(path).resolve()
        digest = hashlib.sha256(self.config_hash.encode())
        if self.content_hash:
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        else:
            stat = path.stat()
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        return digest.hexdigest()

    def entry_path(self, path: str | os.PathLike[str]) -> Path:
        key = self.key(path)
        return self.root / self.config_hash / key[:2] / f"{key}.npz"

    def load(self, path: str | os.PathLike[str]) -> Radiograph | None:
        """The cached radiograph of ``path``, or None (also for an unreadable entry, which is removed)."""
        entry = self.entry_path(path)
        try:
            blob = entry.read_bytes()
            if is_encrypted(blob) and self.keyring is not None:
                blob = self.keyring.decrypt(blob, entry)
            with np.load(io.BytesIO(blob), allow_pickle=False) as data:
                pixels = data["pixels"].astype(np.float32)
                meta = json.loads(str(data["meta"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            entry.unlink(missing_ok=True)
            return None
        return Radiograph.from_metadata(pixels, meta)

    def store(self, path: str | os.PathLike[str], radiograph: Radiograph) -> Path:
        """Write ``radiograph`` as the entry of ``path``; returns the entry file."""
        entry = self.entry_path(path)
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=f".{entry.stem[:8]}-", suffix=".tmp")
        try:
            buffer = io.BytesIO()
            np.savez(buffer, pixels=radiograph.pixels.astype(np.float16),
                     meta=np.array(json.dumps(radiograph.metadata())))
            with os.fdopen(fd, "wb") as fh:
                fh.write(self.keyring.encrypt(buffer.getvalue()) if self.keyring else buffer.getvalue())
            os.replace(tmp, entry)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return entry

    def read_radiograph(self, path: str | os.PathLike[str]) -> Radiograph:
        """``read_radiograph(path, target_size=config["target_size"])`` through the cache.

        On a hit ``dataset`` is None (headers are not cached).
        """
        cached = self.load(path)
        if cached is not None:
            return cached
        from preprocessing.dicom import read_radiograph

        radiograph = read_radiograph(path, target_size=self.config.get("target_size"),
                                     fit=self.config.get("fit", "short"))
        self.store(path, radiograph)
        return radiograph
