"""Forward + backward time of one phantom-tiny batch with the full and the restricted decoder vocabulary.

Builds the model of ``configs/phantom-tiny.yaml`` twice (``decoder_vocab`` None, then the word pieces
of the training split's findings of SYNTHETIC phantom studies), feeds both the same collated batch
of real phantom studies (every loss the trainer uses) and reports the median of ``--repeats`` timed
forward + backward passes after one warm-up, taking turns so machine load hits both alike.

    OMP_NUM_THREADS=2 python benchmarks/bench_decoder_vocab.py --out benchmarks/results/decoder_vocab.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from multimodal.data.dataset import StudyDataset, collate_studies  # noqa: E402
from multimodal.data.manifest import load_manifest  # noqa: E402
from multimodal.data.phantom import write_phantom_dataset  # noqa: E402
from multimodal.models import MultimodalModel  # noqa: E402
from multimodal.training.config import load_train_config  # noqa: E402
from multimodal.training.trainer import train_decoder_vocab  # noqa: E402


def step_seconds(model: MultimodalModel, batch: dict[str, torch.Tensor]) -> float:
    """Wall seconds of one forward + backward pass (gradients cleared first)."""
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    model(**batch).loss.backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "phantom-tiny.yaml"))
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_phantom_dataset(tmp, studies=args.studies, seed=0, size=128)
        cfg = load_train_config(args.config, [f"data.manifest={manifest}"])
        train_records = load_manifest(manifest, splits=cfg.data.train_split)
        models = {}
        for name in ("full", "restricted"):
            config = cfg.multimodal_config()
            if name == "restricted":  # what the trainer does for data.decoder_vocab_from_train
                config.decoder_vocab = train_decoder_vocab(train_records, config.text_encoder)
            torch.manual_seed(0)
            models[name] = MultimodalModel.from_config(config).train()
        model = models["full"]
        dataset = StudyDataset(train_records[:args.batch_size], model.config, tokenizer=model.tokenizer,
                               grid_size=model.grid_size)
        batch, _ = collate_studies([dataset[i] for i in range(len(dataset))])
    times: dict[str, list[float]] = {name: [] for name in models}
    for name, m in models.items():
        step_seconds(m, batch)  # warm-up
    for _ in range(args.repeats):
        for name, m in models.items():
            times[name].append(step_seconds(m, batch))
    result = {name: {"decoder_vocab_size": m.decoder.lm.config.vocab_size,
                     "median_s": statistics.median(times[name]), "times_s": times[name]} for name, m in models.items()}
    result["speedup"] = result["full"]["median_s"] / result["restricted"]["median_s"]
    result["threads"] = torch.get_num_threads()
    result["batch_size"] = args.batch_size
    print(f"{'decoder vocab':<14}{'V':>8}{'fwd+bwd s':>12}")
    for name in models:
        print(f"{name:<14}{result[name]['decoder_vocab_size']:>8}{result[name]['median_s']:>12.3f}")
    print(f"speed-up {result['speedup']:.2f}x at {result['threads']} threads, batch {args.batch_size}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
