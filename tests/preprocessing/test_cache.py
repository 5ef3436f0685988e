"""The preprocessed-radiograph cache: hits, invalidation, atomic writes under concurrency."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from preprocessing.cache import PreprocessCache
from preprocessing.dicom import read_radiograph

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def dicom_file(tmp_path, dx_dataset, chest_like, save):
    return save(dx_dataset(chest_like(), WindowCenter=2048, WindowWidth=4096), tmp_path / "img.dcm")


def test_second_read_is_a_hit_with_the_same_pixels_and_metadata(tmp_path, dicom_file, monkeypatch):
    cache = PreprocessCache(tmp_path / "cache", {"target_size": 64})
    first = cache.read_radiograph(dicom_file)
    assert first.pixels.shape == (77, 64)

    monkeypatch.setattr("preprocessing.dicom.read_radiograph", lambda *a, **k: pytest.fail("decoded again"))
    second = cache.read_radiograph(dicom_file)
    np.testing.assert_allclose(second.pixels, first.pixels, atol=1e-3)  # stored as float16
    assert second.metadata() == first.metadata() and second.dataset is None


def test_config_change_is_a_miss(tmp_path, dicom_file):
    PreprocessCache(tmp_path / "c", {"target_size": 64}).read_radiograph(dicom_file)
    assert PreprocessCache(tmp_path / "c", {"target_size": 32}).load(dicom_file) is None
    assert PreprocessCache(tmp_path / "c", {"target_size": 32}).read_radiograph(dicom_file).pixels.shape == (38, 32)


def test_edited_file_is_a_miss(tmp_path, dicom_file):
    cache = PreprocessCache(tmp_path / "c", {"target_size": 64})
    cache.read_radiograph(dicom_file)
    stat = dicom_file.stat()
    os.utime(dicom_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cache.load(dicom_file) is None


def test_content_hash_follows_the_bytes_not_the_path(tmp_path, dicom_file):
    cache = PreprocessCache(tmp_path / "c", {"target_size": 64}, content_hash=True)
    copy = shutil.copy(dicom_file, tmp_path / "copy.dcm")
    assert cache.key(dicom_file) == cache.key(copy)
    assert PreprocessCache(tmp_path / "c", {"target_size": 64}).key(dicom_file) != \
        PreprocessCache(tmp_path / "c", {"target_size": 64}).key(copy)


def test_corrupt_entry_is_dropped(tmp_path, dicom_file):
    cache = PreprocessCache(tmp_path / "c", {"target_size": 64})
    cache.read_radiograph(dicom_file)
    cache.entry_path(dicom_file).write_bytes(b"half a file")
    assert cache.load(dicom_file) is None and not cache.entry_path(dicom_file).exists()


def _store(args):
    root, path = args
    cache = PreprocessCache(root, {"target_size": 64})
    rg = read_radiograph(path, target_size=64)
    for _ in range(5):
        cache.store(path, rg)
    return cache.load(path) is not None


def test_concurrent_writers_leave_one_valid_entry(tmp_path, dicom_file):
    root = tmp_path / "c"
    with ProcessPoolExecutor(max_workers=2) as pool:
        assert all(pool.map(_store, [(root, dicom_file)] * 4))
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temporary files left behind


def test_encrypted_cache_reads_back_the_same_and_detects_tampering(tmp_path, dicom_file):
    from preprocessing.crypto import DecryptionError, Keyring, generate_key_file

    generate_key_file(tmp_path / "key")
    keyring = Keyring.load(tmp_path / "key")
    clear = PreprocessCache(tmp_path / "clear", {"target_size": 64}).read_radiograph(dicom_file)
    cache = PreprocessCache(tmp_path / "enc", {"target_size": 64}, keyring=keyring)
    cache.read_radiograph(dicom_file)
    entry = cache.entry_path(dicom_file)
    assert entry.read_bytes().startswith(b"MMDXENC") and b"pixels" not in entry.read_bytes()
    hit = cache.load(dicom_file)
    np.testing.assert_array_equal(hit.pixels, PreprocessCache(tmp_path / "clear", {"target_size": 64}).load(dicom_file).pixels)
    assert hit.metadata() == clear.metadata()
    blob = bytearray(entry.read_bytes())
    blob[-20] ^= 1
    entry.write_bytes(bytes(blob))
    with pytest.raises(DecryptionError, match="modified"):
        cache.load(dicom_file)
