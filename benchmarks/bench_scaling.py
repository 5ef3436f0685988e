"""Benchmark 4: how mmdx's cost grows with image size, batch size and text length.

Three sweeps over the matched-size mmdx of ``bench_train`` (width 384, 2 + 2 + 2 layers):

- image size (224, 384, 512 px) at a fixed batch: forward + backward seconds per sample (all losses);
- batch size (1, 4, 16) at 224 px: forward + backward seconds per sample;
- text length (32 ... 256 tokens) at 224 px: inference (eval, no grad, no findings generation)
  peak memory above the resident model, and milliseconds per sample.

Points within a sweep take turns after a warm-up (interleaved repeats, median), as in ``bench_train``.

    python benchmarks/bench_scaling.py --out benchmarks/results/scaling.json
    python benchmarks/bench_scaling.py --small      # the `make bench` sizes
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.bench_train import MATCHED, PRECISIONS, BenchSize, Setup, build, mmdx_batch  # noqa: E402
from benchmarks.common import (  # noqa: E402
    format_table,
    machine_description,
    peak_memory,
    setup_threads,
    time_interleaved,
    write_json,
)

FULL = {"image_sizes": [224, 384, 512], "image_batch": 4, "batch_sizes": [1, 4, 16], "text_lengths": [32, 64, 128, 256],
        "text_batch": 16}
SMALL = {"image_sizes": [128, 224], "image_batch": 2, "batch_sizes": [1, 4], "text_lengths": [32, 128],
         "text_batch": 4}


def _autocast(device: torch.device, precision: str):
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _forward_backward(size: BenchSize, setup: Setup, precision: str):
    """A closure running one forward + backward of mmdx at ``size`` (gradients dropped after)."""
    contender = build("mmdx", size, setup)

    def step() -> None:
        with _autocast(setup.device, precision):
            loss = contender.loss(contender.model, contender.batch)
        loss.backward()
        contender.model.zero_grad(set_to_none=True)

    return step


def _train_sweep(key: str, sizes: list[BenchSize], setup: Setup, precision: str, repeats: int) -> list[dict]:
    """Forward + backward seconds per sample at each size, interleaved."""
    steps = {str(getattr(s, key)): _forward_backward(s, setup, precision) for s in sizes}
    timings = time_interleaved(steps, repeats=repeats, warmup=1, device=setup.device)
    return [
        {
            "sweep": key,
            "value": getattr(s, key),
            "image_size": s.image_size,
            "batch_size": s.batch_size,
            "text_tokens": s.text_tokens,
            "precision": precision,
            "fwd_bwd_s": timings[str(getattr(s, key))].median,
            "ms_per_sample": 1000 * timings[str(getattr(s, key))].median / s.batch_size,
            "spread": timings[str(getattr(s, key))].spread,
        }
        for s in sizes
    ]


def _text_sweep(lengths: list[int], batch: int, setup: Setup, precision: str, repeats: int) -> list[dict]:
    """Inference peak memory and time per sample at each text length (one model, max length = longest)."""
    device = setup.device
    base = replace(MATCHED, batch_size=batch, text_tokens=max(lengths))
    model = build("mmdx", base, setup).model.eval()
    generator = torch.Generator().manual_seed(0)
    batches = {
        n: {k: v.to(device) for k, v in mmdx_batch(replace(base, text_tokens=n), model.config, generator,
                                                     targets=False).items()}
        for n in lengths
    }

    def forward(n: int):
        def run() -> None:
            with torch.inference_mode(), _autocast(device, precision):
                model(**batches[n])

        return run

    timings = time_interleaved({str(n): forward(n) for n in lengths}, repeats=repeats, warmup=1, device=device)
    rows = []
    for n in lengths:
        with peak_memory(device) as mem:
            forward(n)()
        rows.append(
            {
                "sweep": "text_tokens",
                "value": n,
                "image_size": base.image_size,
                "batch_size": batch,
                "text_tokens": n,
                "precision": precision,
                "infer_peak_mib": mem["peak_mib"],
                "ms_per_sample": 1000 * timings[str(n)].median / batch,
                "spread": timings[str(n)].spread,
            }
        )
    return rows


def run(plan: dict, precision: str, repeats: int, setup: Setup) -> dict[str, object]:
    """All three sweeps; the JSON payload."""
    image = [replace(MATCHED, image_size=s, batch_size=plan["image_batch"]) for s in plan["image_sizes"]]
    batch = [replace(MATCHED, batch_size=b) for b in plan["batch_sizes"]]
    rows = _train_sweep("image_size", image, setup, precision, repeats)
    rows += _train_sweep("batch_size", batch, setup, precision, repeats)
    rows += _text_sweep(plan["text_lengths"], plan["text_batch"], setup, precision, repeats)
    return {
        "benchmark": "scaling",
        "plan": plan,
        "precision": precision,
        "pretrained": setup.pretrained,
        "repeats": repeats,
        "machine": machine_description(setup.device),
        "results": rows,
    }


TABLE_COLUMNS = ["sweep", "image_size", "batch_size", "text_tokens", "precision", "ms_per_sample", "spread",
                 "infer_peak_mib"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="small sweeps (for `make bench`)")
    parser.add_argument("--precision", choices=list(PRECISIONS), default="fp32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--random-init", action="store_true", help="random weights instead of the packaged MiniLM")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)

    setup_threads(args.threads)
    setup = Setup(torch.device(args.device), pretrained=not args.random_init)
    payload = run(SMALL if args.small else FULL, args.precision, args.repeats, setup)
    print(format_table(payload["results"], TABLE_COLUMNS))
    if path := write_json(payload, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
