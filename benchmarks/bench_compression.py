"""Pruning, int8 and ONNX Runtime against PyTorch fp32 on CPU: size, samples/s and macro AUROC, one run.

Contenders score the classification + heat-map path (no findings generation) of the manifest's
split, in batches, single-threaded (torch and ONNX Runtime alike), interleaved repeats after a
warm-up (:func:`benchmarks.common.time_interleaved`), median reported:

* ``pytorch fp32``: the model as saved; ``pytorch int8``: :func:`multimodal.compression.quantize.quantize_int8`;
* ``onnxruntime fp32`` / ``onnxruntime int8``: :func:`multimodal.compression.export.export_onnx` (+ int8);
* ``pruned {unstructured,structured} A``: :func:`multimodal.compression.prune.prune` at each amount
  (no fine-tuning), PyTorch fp32.

Size: the weights file, and its gzip-compressed size (where unstructured zeros pay off).

    OMP_NUM_THREADS=1 python benchmarks/bench_compression.py --model runs/tiny/best \
        --manifest runs/phantom/manifest.jsonl --out benchmarks/results/compression.json
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import format_table, machine_description, setup_threads, time_interleaved, write_json  # noqa: E402
from multimodal.compression.export import INPUTS, export_onnx  # noqa: E402
from multimodal.compression.prune import prune  # noqa: E402
from multimodal.compression.quantize import quantize_int8  # noqa: E402
from multimodal.data.dataset import StudyDataset, collate_studies  # noqa: E402
from multimodal.data.manifest import load_manifest  # noqa: E402
from multimodal.evaluation.classification import point_metrics  # noqa: E402
from multimodal.models.modeling import MultimodalModel  # noqa: E402


def _size(path: Path) -> dict[str, float]:
    data = path.read_bytes()
    return {"mb": len(data) / 1e6, "gzip_mb": len(gzip.compress(data, compresslevel=1)) / 1e6}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--amounts", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="JSON results file")
    a = p.parse_args(argv)
    setup_threads(a.threads)
    import onnxruntime as ort

    work = Path(tempfile.mkdtemp(prefix="bench_compression_"))
    source = MultimodalModel.from_pretrained(a.model)
    records = load_manifest(a.manifest, splits=a.split)
    dataset = StudyDataset(records, source.config, tokenizer=source.tokenizer, grid_size=source.grid_size)
    batches = [b for b, _ in DataLoader(dataset, batch_size=a.batch_size, collate_fn=collate_studies)]
    labels = torch.cat([b["labels"] for b in batches]).numpy()
    mask = torch.cat([b["label_mask"] for b in batches]).numpy()
    observations = list(source.config.observations)
    thresholds = np.array([source.config.thresholds[o] for o in observations])

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

    weights = Path(a.model) / "model.safetensors"
    exported = export_onnx(a.model, work / "model.onnx", quantize="int8")
    runners = {"pytorch fp32": torch_runner(source), "pytorch int8": torch_runner(quantize_int8(
        MultimodalModel.from_pretrained(a.model))), "onnxruntime fp32": onnx_runner(exported["onnx"]),
        "onnxruntime int8": onnx_runner(exported["int8_onnx"])}
    sizes = {"pytorch fp32": _size(weights), "onnxruntime fp32": _size(Path(exported["onnx"])),
             "onnxruntime int8": _size(Path(exported["int8_onnx"]))}
    int8_state = work / "int8.pt"
    torch.save(quantize_int8(MultimodalModel.from_pretrained(a.model)).state_dict(), int8_state)
    sizes["pytorch int8"] = _size(int8_state)
    for structured in (False, True):
        for amount in a.amounts:
            name = f"pruned {'structured' if structured else 'unstructured'} {amount:.0%}"
            folder = work / name.replace(" ", "_").replace("%", "")
            prune(a.model, folder, amount=amount, structured=structured)
            runners[name] = torch_runner(MultimodalModel.from_pretrained(folder))
            sizes[name] = _size(folder / "model.safetensors")
    timings = time_interleaved(runners, repeats=a.repeats, warmup=1)
    rows = []
    for name, run in runners.items():
        probs = run()
        auroc = point_metrics(probs, labels, mask, observations, thresholds)["macro"]["auroc"]
        rows.append({"contender": name, "samples_s": len(labels) / timings[name].median,
                     "spread": timings[name].spread, "macro_auroc": auroc, **sizes[name]})
    base = rows[0]
    for row in rows:
        row["speedup"] = row["samples_s"] / base["samples_s"]
        row["delta_auroc"] = row["macro_auroc"] - base["macro_auroc"]
    result = {"machine": machine_description(), "model": a.model, "split": a.split, "studies": len(labels),
              "onnx_max_abs_diff": exported["max_abs_diff"], "onnx_int8_max_abs_diff": exported["int8_max_abs_diff"],
              "rows": rows}
    print(format_table(rows, ["contender", "mb", "gzip_mb", "samples_s", "speedup", "spread", "macro_auroc",
                              "delta_auroc"]))
    print(result["machine"])
    write_json(result, a.out)
    return result


if __name__ == "__main__":
    main()
