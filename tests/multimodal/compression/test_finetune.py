"""Fine-tuning after pruning: the pruned weights stay zero, the loss recovers, the result loads anywhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from multimodal.cli import main
from multimodal.compression.prune import prunable_layers, prune
from multimodal.data.dataset import StudyDataset, collate_studies
from multimodal.data.manifest import load_manifest
from multimodal.data.phantom import write_phantom_dataset
from multimodal.models.head_pruning import attention_modules, head_count
from multimodal.models.modeling import MultimodalModel
from multimodal.training import train

TINY = {"observations": "phantom", "image_size": 32, "patch_size": 8, "image_hidden": 32, "image_layers": 1,
        "image_heads": 2, "image_mlp_dim": 64, "max_views": 1, "text_layers": 1, "text_max_length": 16,
        "freeze_text": "all", "fusion_layers": 1, "fusion_heads": 2, "fusion_hidden": 32, "fusion_mlp_ratio": 2.0,
        "decoder_layers": 1, "decoder_max_length": 16}
QUICK = ["data.batch_size=4", "data.augment=false", "precision=fp32", "logging.progress=false",
         "logging.tracker=none", "optim.lr=1e-3", "optim.warmup_steps=0"]


@pytest.fixture(scope="module", autouse=True)
def state_key(tmp_path_factory) -> Iterator[None]:
    """The key that signs resume state lives in a test folder, not in the user's ~/.config."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMDX_STATE_KEY", str(tmp_path_factory.getbasetemp() / "state.key"))
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory, state_key) -> tuple[Path, Path]:
    """A phantom manifest (24 SYNTHETIC studies) and a tiny model trained on it for 6 steps."""
    root = tmp_path_factory.mktemp("finetune")
    manifest = write_phantom_dataset(root / "phantom", studies=24, seed=0, size=64)
    config = {"model": TINY, "data": {"manifest": str(manifest)}, "optim": {"max_steps": 6}}
    return manifest, train(config, root / "base", QUICK).last


def _train_batch_loss(model_dir: Path, manifest: Path) -> float:
    """The loss of ``model_dir`` (eval mode) on the first 8 training studies: a fixed batch."""
    model = MultimodalModel.from_pretrained(model_dir)
    dataset = StudyDataset(load_manifest(manifest, splits="train")[:8], model.config, tokenizer=model.tokenizer,
                           grid_size=model.grid_size)
    batch, _ = next(iter(DataLoader(dataset, batch_size=8, collate_fn=collate_studies)))
    with torch.no_grad():
        return float(model(**batch).loss)


def test_finetuned_unstructured_model_keeps_its_zeros_and_recovers_the_loss(trained, tmp_path):
    manifest, base = trained
    out = tmp_path / "p70"
    assert main(["prune", "--model", str(base), "--amount", "0.7", "--finetune", "--manifest", str(manifest),
                 "--epochs", "2", *[x for s in QUICK for x in ("--set", s)], "--out", str(out)]) == 0
    pruned, tuned = (MultimodalModel.from_pretrained(d) for d in (out / "finetune" / "pruned", out))
    changed = 0
    for before, after in zip(prunable_layers(pruned), prunable_layers(tuned)):
        zero = before.weight == 0
        assert zero.float().mean() >= 0.69 and bool((after.weight[zero] == 0).all())
        changed += int((after.weight[~zero] != before.weight[~zero]).any() and after.weight.requires_grad)
    assert changed > 0  # the trainable kept weights moved
    report = json.loads((out / "pruning.json").read_text())
    assert report["finetune"]["steps"] > 0 and report["after"]["zeros"] >= report["before"]["zeros"]
    assert _train_batch_loss(out, manifest) < _train_batch_loss(out / "finetune" / "pruned", manifest)


def test_finetuning_a_structured_pruned_model_trains_the_smaller_model(trained, tmp_path):
    manifest, base = trained
    report = prune(base, tmp_path / "s50", amount=0.5, structured=True, manifest=str(manifest), epochs=1,
                   overrides=QUICK)
    tuned = MultimodalModel.from_pretrained(tmp_path / "s50")
    assert {n: head_count(m) for n, m in attention_modules(tuned).items()} == tuned.config.attention_heads
    assert report["after"]["parameters"] < report["before"]["parameters"]
    assert _train_batch_loss(tmp_path / "s50", manifest) < _train_batch_loss(tmp_path / "s50" / "finetune" / "pruned",
                                                                             manifest)
