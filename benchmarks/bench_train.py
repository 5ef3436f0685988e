"""Benchmark 1: one training step (forward + backward + AdamW) of mmdx vs its peers at matched size.

Contenders, all built at the same size (image 224, patch 16, width 384, 2 vision + 2 text +
2 fusion layers, 64 text tokens, batch 16 by default) and fed the same synthetic batch shapes:

- ``mmdx``: :class:`multimodal.models.MultimodalModel` with every loss its config enables
  (classification, findings decoding, regions/zones).
- ``transchex``: MONAI's ``Transchex`` (classification loss). MONAI loads BERT weights at
  construction from a hub id; here it is given a local ``pytorch_model.bin`` converted from the
  packaged MiniLM, so nothing touches the network.
- ``ved``: Hugging Face ``VisionEncoderDecoderModel``, a ViT encoder and a BERT decoder with cross
  attention (the first layers of the packaged MiniLM), trained on a captioning loss.

The contenders take turns (mmdx, transchex, ved, mmdx, ...) after a warm-up; the median step time
gives samples/s, and ``mmdx / peer`` ratios come from the same run. Peak memory is the step's peak
above the resident parameters and optimizer state, measured once per contender after timing.

    python benchmarks/bench_train.py --out benchmarks/results/train.json
    python benchmarks/bench_train.py --device cuda --precisions fp32,bf16,fp16
    python benchmarks/bench_train.py --profile mmdx    # where the time goes (torch.profiler)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks.common import (  # noqa: E402
    format_table,
    machine_description,
    peak_memory,
    setup_threads,
    tensor_mib,
    time_interleaved,
    write_json,
)
from preprocessing.text import DEFAULT_TEXT_ENCODER, default_text_encoder_path, load_tokenizer  # noqa: E402

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# torch's AdamW as most training loops create it (on CPU a per-tensor loop), or its fused kernel.
OPTIMIZERS = {"adamw": {}, "adamw-fused": {"fused": True}}


@dataclass(frozen=True)
class BenchSize:
    """The size every contender is built at. Width 384 is fixed by the MiniLM weights they share."""

    image_size: int = 224
    patch_size: int = 16
    hidden_size: int = 384
    num_heads: int = 12
    mlp_size: int = 1536
    vision_layers: int = 2
    text_layers: int = 2
    fusion_layers: int = 2
    text_tokens: int = 64
    batch_size: int = 16
    num_labels: int = 14
    # mmdx's findings decoder works over the training findings' word pieces (``decoder_vocab_from_train``,
    # on in every report config): the IU X-ray dev findings have 1,800 of MiniLM's 30,522. 0 = all.
    decoder_vocab: int = 1800


MATCHED = BenchSize()
# Small enough for `make bench` and the smoke test; the comparison stays matched, only smaller.
SMALL = replace(MATCHED, image_size=128, batch_size=4, text_tokens=32)
TINY = replace(MATCHED, image_size=64, vision_layers=1, text_layers=1, fusion_layers=1, text_tokens=16, batch_size=2)


@dataclass(frozen=True)
class Setup:
    """How every contender is built and trained: device, optimizer (a key of :data:`OPTIMIZERS`),
    and pretrained or random starting weights (random: same speed, for machines that carry only
    the MiniLM's config and tokenizer)."""

    device: torch.device = torch.device("cpu")
    optimizer: str = "adamw"
    pretrained: bool = True


@dataclass
class Contender:
    """A model, one synthetic batch on its device, and how to get a scalar training loss from both."""

    name: str
    model: nn.Module
    batch: dict[str, torch.Tensor]
    loss: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]

    @property
    def params_m(self) -> float:
        return sum(p.numel() for p in self.model.parameters()) / 1e6


def _token_ids(size: BenchSize, generator: torch.Generator) -> torch.Tensor:
    """``[B, T]`` word-piece ids from the ordinary vocabulary range, ``[CLS] ... [SEP]`` framed."""
    ids = torch.randint(1000, 30000, (size.batch_size, size.text_tokens), generator=generator)
    ids[:, 0], ids[:, -1] = 101, 102
    return ids


def decoder_vocab_ids(size: BenchSize) -> list[int] | None:
    """``size.decoder_vocab`` tokenizer ids for mmdx's decoder (specials + ordinary ids from 1000 on:
    the speed depends on the count only), or None for the full vocabulary."""
    from multimodal.models.decoder_vocab import normalise_decoder_vocab

    if not size.decoder_vocab:
        return None
    tokenizer = load_tokenizer(DEFAULT_TEXT_ENCODER)
    return normalise_decoder_vocab(range(1000, 1000 + size.decoder_vocab - 4), tokenizer)


def _findings_ids(size: BenchSize, config, generator: torch.Generator) -> torch.Tensor:
    """Like :func:`_token_ids`, drawn from the decoder's vocabulary when it is restricted."""
    ids = _token_ids(size, generator)
    if config.decoder_vocab is not None:
        vocab = torch.tensor(config.decoder_vocab)
        ids[:, 1:-1] = vocab[torch.randint(4, len(vocab), (ids.shape[0], ids.shape[1] - 2), generator=generator)]
    return ids


def mmdx_config(size: BenchSize, **overrides):
    """The :class:`MultimodalConfig` of mmdx at ``size`` (findings decoder as deep as the fusion)."""
    from multimodal.models import MultimodalConfig

    return MultimodalConfig(
        decoder_vocab=decoder_vocab_ids(size),
        image_size=size.image_size,
        patch_size=size.patch_size,
        image_hidden=size.hidden_size,
        image_heads=size.num_heads,
        image_mlp_dim=size.mlp_size,
        image_layers=size.vision_layers,
        text_layers=size.text_layers,
        text_max_length=size.text_tokens,
        fusion_layers=size.fusion_layers,
        fusion_heads=size.num_heads,
        fusion_hidden=size.hidden_size,
        decoder_layers=size.fusion_layers,
        decoder_max_length=size.text_tokens,
        **overrides,
    )


def mmdx_batch(size: BenchSize, config, generator: torch.Generator, targets: bool = True) -> dict[str, torch.Tensor]:
    """A synthetic mmdx batch (one frontal view per study); with ``targets`` every loss's targets."""
    b, s, t = size.batch_size, size.image_size, size.text_tokens
    batch = {
        "pixel_values": torch.randn(b, 1, 1, s, s, generator=generator),
        "view_mask": torch.ones(b, 1, dtype=torch.bool),
        "input_ids": _token_ids(size, generator),
        "attention_mask": torch.ones(b, t, dtype=torch.long),
    }
    if not targets:
        return batch
    d, z, (h, w) = len(config.observations), len(config.zones), config.grid_size
    return batch | {
        "labels": torch.randint(0, 2, (b, d), generator=generator).float(),
        "label_mask": torch.ones(b, d, dtype=torch.bool),
        "region_targets": (torch.rand(b, d, h, w, generator=generator) > 0.8).float(),
        "region_mask": torch.ones(b, d, dtype=torch.bool),
        "zone_targets": torch.randint(0, 2, (b, d, z), generator=generator).float(),
        "zone_mask": torch.ones(b, d, dtype=torch.bool),
        "findings_ids": _findings_ids(size, config, generator),
        "findings_mask": torch.ones(b, t, dtype=torch.long),
    }


def build_mmdx(size: BenchSize, generator: torch.Generator, pretrained: bool = True) -> Contender:
    """mmdx at ``size`` with all its losses on (classification, region, zone, findings)."""
    from multimodal.models import MultimodalModel

    config = mmdx_config(size)
    model = MultimodalModel.from_config(config, load_pretrained=pretrained)
    return Contender("mmdx", model, mmdx_batch(size, config, generator), lambda m, x: m(**x).loss)


def build_mmdx_cls(size: BenchSize, generator: torch.Generator, pretrained: bool = True) -> Contender:
    """mmdx trained on Transchex's task only: classification (plus the cheap region/zone terms),
    no findings decoding; the decoder's parameters still exist but get no gradient."""
    contender = build_mmdx(size, generator, pretrained)
    for key in ("findings_ids", "findings_mask"):
        del contender.batch[key]
    contender.name = "mmdx-cls"
    return contender


def _minilm_as_pytorch_bin(directory: Path, pretrained: bool) -> Path:
    """Write the packaged MiniLM's weights as ``pytorch_model.bin`` (the file MONAI's loader reads);
    without ``pretrained`` an empty state, so that MONAI keeps its random initialisation."""
    from safetensors.torch import load_file

    state = load_file(default_text_encoder_path() / "model.safetensors") if pretrained else {}
    torch.save(state, directory / "pytorch_model.bin")
    return directory


def build_transchex(size: BenchSize, generator: torch.Generator, pretrained: bool = True) -> Contender:
    """MONAI Transchex at ``size``, its BERT embeddings loaded from the packaged MiniLM, BCE loss."""
    from monai.networks.nets import Transchex

    with tempfile.TemporaryDirectory() as tmp:
        model = Transchex(
            in_channels=1,
            img_size=(size.image_size, size.image_size),
            patch_size=(size.patch_size, size.patch_size),
            num_classes=size.num_labels,
            num_language_layers=size.text_layers,
            num_vision_layers=size.vision_layers,
            num_mixed_layers=size.fusion_layers,
            hidden_size=size.hidden_size,
            num_attention_heads=size.num_heads,
            intermediate_size=size.mlp_size,
            path_or_repo_id=_minilm_as_pytorch_bin(Path(tmp), pretrained),
        )
    b, s = size.batch_size, size.image_size
    batch = {
        "input_ids": _token_ids(size, generator),
        "vision_feats": torch.randn(b, 1, s, s, generator=generator),
        "labels": torch.randint(0, 2, (b, size.num_labels), generator=generator).float(),
    }

    def loss(m: nn.Module, x: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = m(input_ids=x["input_ids"], vision_feats=x["vision_feats"])
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), x["labels"])

    return Contender("transchex", model, batch, loss)


def build_ved(size: BenchSize, generator: torch.Generator, pretrained: bool = True) -> Contender:
    """HF VisionEncoderDecoderModel: ViT encoder + MiniLM-initialised BERT decoder, captioning loss."""
    from transformers import BertConfig, BertLMHeadModel, ViTConfig, ViTModel, VisionEncoderDecoderModel

    encoder = ViTModel(
        ViTConfig(
            image_size=size.image_size,
            patch_size=size.patch_size,
            num_channels=1,
            hidden_size=size.hidden_size,
            num_hidden_layers=size.vision_layers,
            num_attention_heads=size.num_heads,
            intermediate_size=size.mlp_size,
        ),
        add_pooling_layer=False,
    )
    # The decoder gets the text and fusion layer budget: each layer self-attends and cross-attends.
    decoder_size = {"num_hidden_layers": size.text_layers, "num_attention_heads": size.num_heads,
                    "is_decoder": True, "add_cross_attention": True}
    if pretrained:
        decoder = BertLMHeadModel.from_pretrained(default_text_encoder_path(), **decoder_size)
    else:
        decoder = BertLMHeadModel(BertConfig.from_pretrained(default_text_encoder_path(), **decoder_size))
    model = VisionEncoderDecoderModel(encoder=encoder, decoder=decoder)
    model.config.decoder_start_token_id = 101
    model.config.pad_token_id = 0
    b, s = size.batch_size, size.image_size
    batch = {"pixel_values": torch.randn(b, 1, s, s, generator=generator), "labels": _token_ids(size, generator)}
    return Contender("ved", model, batch, lambda m, x: m(**x).loss)


BUILDERS: dict[str, Callable[[BenchSize, torch.Generator, bool], Contender]] = {
    "mmdx": build_mmdx,
    "mmdx-cls": build_mmdx_cls,
    "transchex": build_transchex,
    "ved": build_ved,
}


def build(name: str, size: BenchSize, setup: Setup) -> Contender:
    """Build contender ``name`` in training mode with its batch on ``setup.device`` (fixed seed)."""
    from transformers.utils import logging as hf_logging

    # Loading the first layers of MiniLM reports the unused ones and new cross-attention: expected.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    contender = BUILDERS[name](size, generator, setup.pretrained)
    contender.model.to(setup.device).train()
    contender.batch = {k: v.to(setup.device) for k, v in contender.batch.items()}
    return contender


def make_train_step(
    contender: Contender, setup: Setup, precision: str, lr: float = 1e-4
) -> Callable[[], torch.Tensor]:
    """A closure doing one optimisation step on the contender's batch under autocast ``precision``
    (fp32: none) and returning the detached loss (no device sync).

    Every contender gets the same optimizer over its trainable parameters. fp16 uses a gradient
    scaler, as any fp16 training must; bf16 needs none.
    """
    device, dtype = setup.device, PRECISIONS[precision]
    trainable = [p for p in contender.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=lr, **OPTIMIZERS[setup.optimizer])
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)

    def step() -> torch.Tensor:
        autocast = (
            torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        )
        with autocast:
            loss = contender.loss(contender.model, contender.batch)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    step.optimizer = opt  # type: ignore[attr-defined]
    return step


def run(
    names: list[str],
    size: BenchSize,
    precisions: list[str],
    repeats: int,
    warmup: int,
    setup: Setup,
) -> dict[str, object]:
    """Time every (contender, precision) interleaved, then measure peak memory; return the JSON payload."""
    contenders = {name: build(name, size, setup) for name in names}
    steps = {(n, p): make_train_step(contenders[n], setup, p) for n in names for p in precisions}
    timings = time_interleaved(
        {f"{n}@{p}": fn for (n, p), fn in steps.items()}, repeats=repeats, warmup=warmup, device=setup.device
    )
    rows = []
    for (n, p), fn in steps.items():
        with peak_memory(setup.device) as mem:
            fn()
        timing = timings[f"{n}@{p}"]
        state = [*contenders[n].model.parameters()]
        state += [t for s in fn.optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
        rows.append(
            {
                "model": n,
                "precision": p,
                "params_m": round(contenders[n].params_m, 2),
                "samples_per_s": size.batch_size / timing.median,
                "step_s_median": timing.median,
                "step_s_all": timing.seconds,
                "step_cpu_s_median": timing.cpu_median,
                "spread": timing.spread,
                "state_mib": tensor_mib(state),
                "step_peak_mib": mem["peak_mib"],
            }
        )
    ratios = {}
    for ours in (r for r in rows if r["model"].startswith("mmdx")):
        for peer in (r for r in rows if r["precision"] == ours["precision"] and not r["model"].startswith("mmdx")):
            ratios[f"{ours['model']}/{peer['model']}@{ours['precision']}"] = ours["samples_per_s"] / peer["samples_per_s"]
    return {
        "benchmark": "train_step",
        "size": asdict(size),
        "optimizer": setup.optimizer,
        "pretrained": setup.pretrained,
        "repeats": repeats,
        "warmup": warmup,
        "machine": machine_description(setup.device),
        "results": rows,
        "ratios": ratios,
    }


def profile(name: str, size: BenchSize, precision: str, setup: Setup, rows: int = 30) -> str:
    """torch.profiler table (self CPU/CUDA time) of two training steps of one contender, after warm-up."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    step = make_train_step(build(name, size, setup), setup, precision)
    step()
    cuda = setup.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch_profile(activities=activities, record_shapes=True) as prof:
        for _ in range(2):
            step()
    return prof.key_averages().table(sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total", row_limit=rows)


def count_flops(names: list[str], size: BenchSize, setup: Setup) -> list[dict]:
    """Forward and forward + backward GFLOP of one training loss per contender (torch's FLOP counter:
    matrix products and attention; element-wise work uncounted). Independent of machine load."""
    from torch.utils.flop_counter import FlopCounterMode

    rows = []
    for name in names:
        contender = build(name, size, setup)
        with FlopCounterMode(display=False) as forward:
            loss = contender.loss(contender.model, contender.batch)
        with FlopCounterMode(display=False) as backward:
            loss.backward()
        fwd, bwd = forward.get_total_flops() / 1e9, backward.get_total_flops() / 1e9
        rows.append({"model": name, "params_m": round(contender.params_m, 2), "fwd_gflop": fwd,
                     "fwd_bwd_gflop": fwd + bwd})
    return rows


def check_training(size: BenchSize, precision: str, setup: Setup, steps: int = 30, lr: float = 3e-4) -> dict:
    """Train mmdx on one fixed batch for ``steps`` steps: the loss must stay finite and fall.

    A correctness check of the training step on a new device or precision (fp16 overflow, bf16
    loss of precision, kernels that differ from the CPU's), not a speed measurement.
    """
    step = make_train_step(build("mmdx", size, setup), setup, precision, lr=lr)
    losses = [float(step()) for _ in range(steps)]
    finite = all(torch.isfinite(torch.tensor(losses)).tolist())
    return {"precision": precision, "steps": steps, "lr": lr, "losses": losses, "finite": finite,
            "ok": finite and losses[-1] < 0.5 * losses[0]}


TABLE_COLUMNS = [
    "model", "precision", "params_m", "samples_per_s", "step_s_median", "step_cpu_s_median", "spread",
    "state_mib", "step_peak_mib",
]


def report(payload: dict[str, object]) -> str:
    """The printed table plus the ratios line."""
    ratios = ", ".join(f"{k} = {v:.2f}x" for k, v in payload["ratios"].items())
    return format_table(payload["results"], TABLE_COLUMNS) + (f"\nratios (samples/s): {ratios}" if ratios else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["matched", "small", "tiny"], default="matched")
    parser.add_argument("--models", default=",".join(BUILDERS), help="comma-separated subset of: " + ", ".join(BUILDERS))
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16, fp16 (autocast)")
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adamw-fused",
                        help="the same for every model (fused: what mmdx's trainer uses)")
    parser.add_argument("--random-init", action="store_true", help="random weights instead of the packaged MiniLM")
    parser.add_argument("--batch-size", type=int, help="override the size's batch")
    parser.add_argument("--decoder-vocab", type=int, help="mmdx's findings decoder vocabulary size "
                        "(default 1,800, the IU X-ray findings' word pieces; 0 = all 30,522)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--profile", metavar="MODEL", help="print a torch.profiler table for MODEL instead")
    parser.add_argument("--flops", action="store_true", help="instead: count each model's GFLOP per step")
    parser.add_argument("--check", type=int, metavar="STEPS",
                        help="instead: train mmdx on one batch for STEPS steps per precision; exit 1 unless the loss falls")
    args = parser.parse_args(argv)

    setup_threads(args.threads)
    size = {"matched": MATCHED, "small": SMALL, "tiny": TINY}[args.size]
    if args.batch_size:
        size = replace(size, batch_size=args.batch_size)
    if args.decoder_vocab is not None:
        size = replace(size, decoder_vocab=args.decoder_vocab)
    setup = Setup(torch.device(args.device), args.optimizer, pretrained=not args.random_init)
    precisions = args.precisions.split(",")
    unknown = [p for p in precisions if p not in PRECISIONS] + [m for m in args.models.split(",") if m not in BUILDERS]
    if unknown:
        parser.error(f"unknown precision or model: {', '.join(unknown)}")
    if args.profile:
        print(profile(args.profile, size, precisions[0], setup))
        return 0
    if args.flops:
        rows = count_flops(args.models.split(","), size, setup)
        print(format_table(rows, ["model", "params_m", "fwd_gflop", "fwd_bwd_gflop"]))
        write_json({"benchmark": "train_flops", "size": asdict(size), "results": rows}, args.out)
        return 0
    if args.check:
        checks = [check_training(size, p, setup, steps=args.check) for p in precisions]
        for c in checks:
            print(f"{c['precision']}: loss {c['losses'][0]:.3f} -> {c['losses'][-1]:.3f} in {c['steps']} steps: "
                  f"{'ok' if c['ok'] else 'FAILED'}")
        write_json({"benchmark": "train_check", "size": asdict(size), "machine": machine_description(setup.device),
                    "checks": checks}, args.out)
        return 0 if all(c["ok"] for c in checks) else 1
    payload = run(args.models.split(","), size, precisions, args.repeats, args.warmup, setup)
    print(report(payload))
    if path := write_json(payload, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
