"""Input discovery: DICOM grouped by study, images alone, path lists, manifests, sharding."""

from __future__ import annotations

import shutil

import numpy as np
from PIL import Image

from multimodal.inference.sources import discover_studies, shard


def test_folder_groups_dicom_views_by_study_and_keeps_images_alone(phantom_dir, tmp_path):
    archive = tmp_path / "archive"
    shutil.copytree(phantom_dir / "dicom", archive / "dicom")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(archive / "extra.png")
    (archive / "notes.txt").write_text("not an image")

    found = discover_studies([archive])

    two_view = [s for s in found.studies if len(s.paths) == 2]
    assert two_view, "the phantom set has studies with a lateral view"
    for study in two_view:
        assert study.paths[0].endswith("PA.dcm")  # frontal first: heat maps refer to it
        assert study.study_id == study.study_instance_uid
    assert "extra.png" in {s.study_id for s in found.studies}
    assert not any("notes" in p for s in found.studies for p in s.paths)
    assert len(found.studies) == 8 + 1


def test_path_list_and_manifest_name_the_same_files(phantom_dir, tmp_path):
    files = sorted((phantom_dir / "dicom").rglob("*.dcm"))
    listing = tmp_path / "paths.txt"
    listing.write_text("# one per line\n" + "\n".join(str(f) for f in files) + "\n" + "missing.dcm\n")

    from_list = discover_studies([listing])
    from_manifest = discover_studies([phantom_dir / "manifest.jsonl"])

    flatten = lambda found: sorted(p for s in found.studies for p in s.paths)  # noqa: E731
    assert flatten(from_list) == flatten(from_manifest) == [str(f) for f in files]
    assert [e.stage for e in from_list.errors] == ["discover"]
    assert all(s.text for s in from_manifest.studies)  # the indication travels with the study


def test_shards_partition_the_studies(phantom_dir):
    studies = discover_studies([phantom_dir / "dicom"]).studies
    parts = [shard(studies, rank, 3) for rank in range(3)]
    ids = [s.study_id for part in parts for s in part]
    assert sorted(ids) == sorted(s.study_id for s in studies)
    assert parts == [shard(studies, rank, 3) for rank in range(3)]
