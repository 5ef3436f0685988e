"""mmdx score: resumable batch scoring of folders, manifests or files."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given, print_json


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "score", help="batch-score folders, manifests or files (resumable)",
                    examples=("mmdx score --model runs/tiny/best --input archive/ --out results.jsonl --sr-dir sr/",
                              "mmdx score --model runs/tiny/best --input studies.jsonl --out results.csv --format csv"))
    s.add_argument("--model", required=True, help="model directory (save_pretrained output)")
    s.add_argument("--input", nargs="+", required=True, help="folders, manifests (.jsonl) or image files")
    s.add_argument("--out", required=True, help="results file; unusable inputs go to <out>.errors.jsonl, inputs "
                                                "deliberately not used to <out>.skipped.jsonl, each with the reason")
    s.add_argument("--batch-size", type=int, default=None, help="studies per batch (default: 8)")
    s.add_argument("--workers", type=int, default=None,
                   help="decode processes; 0 decodes in this process (default: from the cores)")
    s.add_argument("--threads", type=int, default=None,
                   help="CPU model: batches run at once, one torch thread each "
                        "(default: torch's thread count, i.e. the cores or OMP_NUM_THREADS)")
    s.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda:0 (default: CUDA when present)")
    s.add_argument("--precision", default=None, choices=["fp32", "bf16", "fp16"],
                   help="compute precision (default: the model's, bf16 where the hardware has it)")
    s.add_argument("--sr-dir", default=None, help="write one DICOM SR per DICOM study here (default: none)")
    s.add_argument("--heatmaps", default=None, help="write heat maps (.npz + PNG overlays) here (default: none)")
    s.add_argument("--format", default=None, choices=["jsonl", "csv", "parquet"], help="results format (default: jsonl)")
    s.add_argument("--tta", type=int, default=None,
                   help="test-time augmentation passes (shifts, scales, rotations, gamma; never a flip) "
                        "averaged per study; their spread is the uncertainty (default: 1; no augmentation)")
    s.add_argument("--mc-dropout", type=int, default=None,
                   help="Monte Carlo dropout passes (dropout layers on, fixed seed) averaged per study; their "
                        "spread is the uncertainty; with --tta, each augmented pass runs them "
                        "(default: 1; no MC dropout)")
    s.add_argument("--no-findings", action="store_true", help="skip findings text generation")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.inference.scoring import score

    summary = score(a.model, a.input, out=a.out, sr_dir=a.sr_dir, heatmap_dir=a.heatmaps,
                    generate=not a.no_findings, progress=not a.quiet,
                    **given(a, batch_size="batch_size", workers="workers", threads="threads", device="device",
                            precision="precision", output_format="format", tta="tta",
                            mc_dropout="mc_dropout"))
    print_json(summary)
    return 0
