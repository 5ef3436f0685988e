"""Pruning, int8 and ONNX Runtime against PyTorch fp32 on CPU: size, samples/s and macro AUROC, one run.

Contenders score the classification + heat-map path (no findings generation) in batches,
single-threaded (torch and ONNX Runtime alike), interleaved repeats after a warm-up
(:func:`benchmarks.common.time_interleaved`), median reported:

* ``pytorch fp32``: the model as saved; ``pytorch int8``: :func:`multimodal.compression.quantize.quantize_int8`;
* ``onnxruntime fp32`` / ``onnxruntime int8``: :func:`multimodal.compression.export.export_onnx` (+ int8);
* ``pruned {unstructured,structured} A``: :func:`multimodal.compression.prune.prune` at each amount,
  PyTorch fp32; with ``--finetune-epochs N`` also ``... + fine-tuned`` (``prune(..., manifest=...)``,
  N epochs on the manifest's train split, the checkpoint picked on its val split);
* ``pruned structured A [+ fine-tuned], onnxruntime int8``: that model exported and int8-quantized.

Two sources: a trained model (``--model DIR --manifest M``: the manifest's ``--split`` is scored and
macro AUROC computed) or a config's ``model`` block, randomly initialised (``--config YAML``:
``--samples`` random studies of the model's shapes; only speed, size and the largest probability
change against fp32 mean anything). Size: the weights file and its gzip-compressed size (where
unstructured zeros pay off). Speed: samples per wall second (what a user waits) and per CPU
second of this process (what a loaded, shared machine distorts least). AUROC change: against
``pytorch fp32``, with a paired bootstrap 95% interval (1000 resamples of the scored studies).

    OMP_NUM_THREADS=1 python benchmarks/bench_compression.py --model runs/tiny/best \
        --manifest runs/phantom/manifest.jsonl --out benchmarks/results/compression.json
    OMP_NUM_THREADS=1 python benchmarks/bench_compression.py --config configs/nih-boxes.yaml \
        --out benchmarks/results/compression_nih_size.json
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import multilabel_auroc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import format_table, machine_description, setup_threads, time_interleaved, write_json  # noqa: E402
from multimodal.compression.export import INPUTS, example_batch, export_onnx  # noqa: E402
from multimodal.compression.prune import prune  # noqa: E402
from multimodal.compression.quantize import quantize_int8  # noqa: E402
from multimodal.data.dataset import StudyDataset, collate_studies  # noqa: E402
from multimodal.data.manifest import load_manifest  # noqa: E402
from multimodal.evaluation.classification import point_metrics, valid_mask  # noqa: E402
from multimodal.models.modeling import MultimodalModel  # noqa: E402
from multimodal.training.config import load_train_config  # noqa: E402


def _size(path: Path) -> dict[str, float]:
    data = path.read_bytes()
    return {"mb": len(data) / 1e6, "gzip_mb": len(gzip.compress(data, compresslevel=1)) / 1e6}


def _source(a: argparse.Namespace, work: Path) -> Path:
    """The model directory to compress: ``--model``, or ``--config``'s model block randomly initialised."""
    if a.model:
        return Path(a.model)
    torch.manual_seed(0)
    config = load_train_config(a.config).multimodal_config()
    return MultimodalModel.from_config(config, load_pretrained=False).save_pretrained(work / "random")


def _batches(a: argparse.Namespace, source: MultimodalModel) -> list[dict[str, torch.Tensor]]:
    """The studies scored: the manifest's split, or ``--samples`` random studies (no labels)."""
    if a.manifest and a.model:
        records = load_manifest(a.manifest, splits=a.split)
        dataset = StudyDataset(records, source.config, tokenizer=source.tokenizer, grid_size=source.grid_size)
        return [b for b, _ in DataLoader(dataset, batch_size=a.batch_size, collate_fn=collate_studies)]
    return [example_batch(source, studies=min(a.batch_size, a.samples - start), tokens=8, seed=start)
            for start in range(0, a.samples, a.batch_size)]


def _macro_auroc(probs: np.ndarray, target: torch.Tensor) -> float:
    """Macro AUROC over the observations with both classes present (``target``: -1 = no label)."""
    pos, n = (target == 1).sum(0), (target >= 0).sum(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = multilabel_auroc(torch.as_tensor(probs, dtype=torch.float32), target, num_labels=target.shape[1],
                                  average=None, ignore_index=-1)
    return float(values[(pos > 0) & (pos < n)].mean())


def paired_delta_ci(probs: np.ndarray, reference: np.ndarray, labels: np.ndarray, ok: np.ndarray,
                    n_bootstrap: int = 1000, seed: int = 0) -> list[float]:
    """95% interval of macro AUROC(probs) - macro AUROC(reference), resampling the same studies for both."""
    rng = np.random.default_rng(seed)
    target = torch.as_tensor(np.where(ok, labels, -1), dtype=torch.long)
    deltas = []
    for _ in range(n_bootstrap):
        idx = rng.integers(0, len(probs), len(probs))
        deltas.append(_macro_auroc(probs[idx], target[idx]) - _macro_auroc(reference[idx], target[idx]))
    return [float(np.percentile(deltas, 2.5)), float(np.percentile(deltas, 97.5))]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source_group = p.add_mutually_exclusive_group(required=True)
    source_group.add_argument("--model", help="trained model directory (with --manifest: AUROC)")
    source_group.add_argument("--config", help="training config whose model block is built with random weights")
    p.add_argument("--manifest", default=None)
    p.add_argument("--split", default="test")
    p.add_argument("--samples", type=int, default=64, help="random studies scored with --config")
    p.add_argument("--amounts", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    p.add_argument("--finetune-epochs", type=int, default=0, help="also fine-tune each pruned model (needs --manifest)")
    p.add_argument("--set", action="append", default=[], help="fine-tuning training-config overrides")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="JSON results file")
    a = p.parse_args(argv)
    if a.finetune_epochs and not a.manifest:
        p.error("--finetune-epochs needs --manifest")
    setup_threads(a.threads)
    with tempfile.TemporaryDirectory(prefix="bench_compression_") as tmp:  # ~1.7 GB for a real model
        return _measure(a, argv, Path(tmp))


def _measure(a: argparse.Namespace, argv: list[str] | None, work: Path) -> dict:
    """Export, prune and time every contender under ``work``, a folder the caller removes."""
    import onnxruntime as ort

    load_before = os.getloadavg()
    model_dir = _source(a, work)
    source = MultimodalModel.from_pretrained(model_dir)
    batches = _batches(a, source)
    studies = sum(len(b["view_mask"]) for b in batches)

    def torch_runner(model):
        def run() -> np.ndarray:
            with torch.inference_mode():
                return torch.cat([model(**{k: b[k] for k in INPUTS}).probs for b in batches]).numpy()
        return run

    def onnx_runner(path: str):
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = a.threads, 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        return lambda: np.concatenate([session.run(["probs"], {k: b[k].numpy() for k in INPUTS})[0] for b in batches])

    exported = export_onnx(model_dir, work / "model.onnx", quantize="int8")
    runners = {"pytorch fp32": torch_runner(source), "pytorch int8": torch_runner(quantize_int8(
        MultimodalModel.from_pretrained(model_dir))), "onnxruntime fp32": onnx_runner(exported["onnx"]),
        "onnxruntime int8": onnx_runner(exported["int8_onnx"])}
    sizes = {"pytorch fp32": _size(model_dir / "model.safetensors"), "onnxruntime fp32": _size(Path(exported["onnx"])),
             "onnxruntime int8": _size(Path(exported["int8_onnx"]))}
    int8_state = work / "int8.pt"
    torch.save(quantize_int8(MultimodalModel.from_pretrained(model_dir)).state_dict(), int8_state)
    sizes["pytorch int8"] = _size(int8_state)
    finetuned = {}
    for structured in (False, True):
        for amount in a.amounts:
            name = f"pruned {'structured' if structured else 'unstructured'} {amount:.0%}"
            folder = work / name.replace(" ", "_").replace("%", "")
            manifest = a.manifest if a.finetune_epochs else None
            report = prune(model_dir, folder, amount=amount, structured=structured, manifest=manifest,
                           epochs=a.finetune_epochs, overrides=a.set)
            pruned_only = folder / "finetune" / "pruned" if manifest else folder
            runners[name] = torch_runner(MultimodalModel.from_pretrained(pruned_only))
            sizes[name] = _size(pruned_only / "model.safetensors")
            if manifest:
                name += " + fine-tuned"
                runners[name] = torch_runner(MultimodalModel.from_pretrained(folder))
                sizes[name] = _size(folder / "model.safetensors")
                finetuned[name] = {k: v for k, v in report["finetune"].items() if k != "model"}  # a temp path
            if structured:  # the smaller model, then ONNX Runtime int8: the two combined
                int8 = Path(export_onnx(folder, folder / "model.onnx", quantize="int8")["int8_onnx"])
                runners[name + ", onnxruntime int8"] = onnx_runner(str(int8))
                sizes[name + ", onnxruntime int8"] = _size(int8)
    timings = time_interleaved(runners, repeats=a.repeats, warmup=1)
    reference = runners["pytorch fp32"]()
    scored = a.manifest is not None and a.model is not None
    if scored:
        labels = torch.cat([b["labels"] for b in batches]).numpy()
        mask = torch.cat([b["label_mask"] for b in batches]).numpy()
        observations = list(source.config.observations)
        thresholds = np.array([source.config.thresholds[o] for o in observations])
    rows = []
    for name, run in runners.items():
        probs = run()
        row = {"contender": name, "samples_s": studies / timings[name].median,
               "cpu_samples_s": studies / timings[name].cpu_median, "spread": timings[name].spread,
               "max_prob_change": float(np.abs(probs - reference).max()), **sizes[name]}
        if scored:
            row["macro_auroc"] = point_metrics(probs, labels, mask, observations, thresholds)["macro"]["auroc"]
            row["delta_auroc_ci"] = paired_delta_ci(probs, reference, labels, valid_mask(labels, mask))
        rows.append(row)
    base = rows[0]
    for row in rows:
        row["speedup"] = row["samples_s"] / base["samples_s"]
        row["cpu_speedup"] = row["cpu_samples_s"] / base["cpu_samples_s"]
        if scored:
            row["delta_auroc"] = row["macro_auroc"] - base["macro_auroc"]
    result = {"machine": machine_description(), "command": sys.argv if argv is None else argv,
              "source": a.model or f"{a.config} (model block, random weights)", "split": a.split if scored else None,
              "studies": studies, "parameters": sum(p.numel() for p in source.parameters()),
              "load_average": {"start": load_before, "end": os.getloadavg()},
              "onnx_max_abs_diff": exported["max_abs_diff"], "onnx_int8_max_abs_diff": exported["int8_max_abs_diff"],
              "finetune": finetuned, "rows": rows}
    columns = ["contender", "mb", "gzip_mb", "samples_s", "speedup", "cpu_samples_s", "cpu_speedup", "spread",
               "max_prob_change"] + (["macro_auroc", "delta_auroc", "delta_auroc_ci"] if scored else [])
    print(format_table(rows, columns))
    print(result["machine"], "load average", result["load_average"])
    write_json(result, a.out)
    return result


if __name__ == "__main__":
    main()
