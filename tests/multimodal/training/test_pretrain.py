"""mmdx pretrain: MAE pretraining on a folder of images, resumable, TensorBoard, and a weights file the
monai_vit image encoder loads (strictly) through image_pretrained."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from multimodal.cli import main
from multimodal.data.manifest import write_manifest
from multimodal.models import MultimodalConfig, MultimodalModel
from multimodal.training.pretrain import encoder_state, build_mae, image_paths, load_pretrain_config, pretrain
from preprocessing.errors import ConfigError

VIT = {"image_size": 32, "patch_size": 8, "image_hidden": 32, "image_layers": 2, "image_heads": 4,
       "image_mlp_dim": 64}
OPTIONS = ["batch_size=4", "max_steps=4", "decoder_hidden=16", "decoder_layers=1", "decoder_heads=2",
           "progress=false", "checkpoint_every=2"]


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (40, 36), dtype=np.uint8)).save(tmp_path / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_halt_resume_tensorboard_and_weights_the_vit_loads(folder, tmp_path):
    out = tmp_path / "mae"
    config = {"model": VIT}
    first = pretrain([folder], out, config=config, overrides=OPTIONS + ["halt_after_steps=2"])
    assert first.steps == 2 and first.images == 6 and (out / "state").is_dir()
    with pytest.raises(ConfigError, match="--resume"):
        pretrain([folder], out, config=config, overrides=OPTIONS)
    done = pretrain([folder], out, config=config, overrides=OPTIONS, resume=True)
    assert done.steps == 4 and np.isfinite(done.last_loss)
    assert list((out / "tb").rglob("events.out.tfevents*"))
    model = MultimodalModel.from_config(MultimodalConfig(observations="phantom", text_layers=1, **VIT,
                                                         image_pretrained=str(done.weights)))
    from safetensors.torch import load_file

    saved = load_file(str(done.weights))
    torch.testing.assert_close(model.image_encoder.vit.blocks[1].attn.qkv.weight, saved["blocks.1.attn.qkv.weight"])
    torch.testing.assert_close(model.image_encoder.vit.norm.weight, saved["norm.weight"])


def test_the_encoder_state_maps_onto_every_vit_weight():
    from monai.networks.nets import ViT

    cfg = load_pretrain_config({"model": VIT, "decoder_hidden": 16, "decoder_heads": 2})
    vit = ViT(in_channels=1, img_size=32, patch_size=8, hidden_size=32, mlp_dim=64, num_layers=2, num_heads=4,
              classification=False, spatial_dims=2, qkv_bias=True)
    vit.load_state_dict(encoder_state(build_mae(cfg), layers=2), strict=True)


def test_manifests_give_only_their_train_and_val_images(folder, tmp_path):
    studies = [{"study_id": f"s{i}", "images": [str(folder / f"img{i}.png")], "split": split}
               for i, split in enumerate(["train", "val", "test"])]
    manifest = write_manifest(studies, tmp_path / "m.jsonl")
    assert [p.rsplit("/", 1)[-1] for p in image_paths([manifest], ["train", "val"])] == ["img0.png", "img1.png"]


def test_config_errors_name_the_key_and_a_training_config_fits(tmp_path):
    with pytest.raises(ConfigError, match="mask_ratio"):
        load_pretrain_config({"mask_ratio": 1.5})
    with pytest.raises(ConfigError, match="model.image_encoder"):
        load_pretrain_config({"model": {"image_encoder": "timm:resnet18"}})
    recipe = tmp_path / "train.yaml"
    recipe.write_text("model: {image_size: 64, patch_size: 16}\ndata: {manifest: m.jsonl}\npretrain: {epochs: 3}\n")
    cfg = load_pretrain_config(recipe)
    assert cfg.epochs == 3 and cfg.vit().image_size == 64


def test_the_command_line(folder, tmp_path, capsys):
    recipe = tmp_path / "mae.yaml"
    recipe.write_text("model: " + str(VIT).replace("'", "") + "\n")
    args = ["pretrain", "--images", str(folder), "--out", str(tmp_path / "run"), "--config", str(recipe)]
    for option in OPTIONS + ["max_steps=1"]:
        args += ["--set", option]
    assert main(args) == 0
    assert '"steps": 1' in capsys.readouterr().out


def test_a_training_config_with_a_pretrain_section_pretrains_first(tiny_config, tmp_path):
    from multimodal.training.trainer import train

    config = {**tiny_config, "pretrain": {"max_steps": 2, "batch_size": 4, "decoder_hidden": 16, "decoder_heads": 2,
                                          "decoder_layers": 1}}
    result = train(config, tmp_path / "run")
    weights = tmp_path / "run" / "pretrain" / "image_encoder.safetensors"
    assert weights.is_file() and result.best is not None
    assert MultimodalConfig.load(result.best).image_pretrained == str(weights)
    with pytest.raises(ConfigError, match="pretrain.mask_ratio"):
        train({**tiny_config, "pretrain": {"mask_ratio": 2}}, tmp_path / "other")
