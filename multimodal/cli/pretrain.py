"""mmdx pretrain: masked-autoencoder pretraining of the ViT image encoder on unlabelled radiographs."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given, print_json


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "pretrain", help="MAE-pretrain the ViT image encoder on unlabelled images (resumable)",
                    examples=("mmdx pretrain --images archive/ --config configs/nih-boxes.yaml --out runs/mae",
                              "mmdx pretrain --images nih.jsonl --config configs/nih-boxes.yaml --out runs/mae "
                              "--set epochs=50 --set mask_ratio=0.6",
                              "mmdx train --config configs/nih-boxes.yaml "
                              "--set model.image_pretrained=runs/mae/image_encoder.safetensors --out runs/nih"))
    s.add_argument("--images", nargs="+", required=True,
                   help="folders of DICOM/PNG/JPEG, image files, path lists (.txt) or manifests (.jsonl; their "
                        "train and val studies)")
    s.add_argument("--out", required=True, help="run directory: image_encoder.safetensors, state/, tb/")
    s.add_argument("--config", default=None, help="YAML with a 'model' section sizing the ViT (a training config "
                                                  "works; its 'pretrain' section holds MAE options) "
                                                  "(default: the default MultimodalConfig's ViT)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an option, e.g. epochs=50 or model.image_size=128 (repeatable; default: none)")
    s.add_argument("--resume", action="store_true", help="continue from OUT/state")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.training.pretrain import pretrain

    result = pretrain(a.images, out=a.out, overrides=a.set, resume=a.resume, **given(a, config="config"))
    print_json({"weights": str(result.weights), "steps": result.steps, "images": result.images,
                "last_loss": result.last_loss}, indent=2)
    return 0
