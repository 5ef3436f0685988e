"""mmdx phantom: synthetic chest-like DICOM studies (clearly marked SYNTHETIC)."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "phantom", help="write synthetic chest-like DICOM studies and a manifest",
                    examples=("mmdx phantom --out data/phantom --studies 400",))
    s.add_argument("--out", required=True, help="output folder (studies + manifest.jsonl)")
    s.add_argument("--studies", type=int, default=None, help="number of studies (default: 200)")
    s.add_argument("--seed", type=int, default=None, help="random seed (default: 0)")
    s.add_argument("--size", type=int, default=None, help="image side in pixels (default: 256)")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.data.phantom import write_phantom_dataset

    manifest = write_phantom_dataset(a.out, **given(a, studies="studies", seed="seed", size="size"))
    print(f"wrote SYNTHETIC phantom studies (not patient data); manifest: {manifest}")
    return 0
