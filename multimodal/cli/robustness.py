"""mmdx robustness: a model under FGSM/PGD, radiograph corruptions and changed clinical text."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given, print_json


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "robustness", help="measure a model under attacks, film corruptions and changed text",
                    examples=("mmdx robustness --model runs/tiny/best --manifest runs/phantom/manifest.jsonl "
                              "--out runs/tiny-robust",
                              "mmdx robustness --model runs/tiny/best --manifest m.jsonl --out r --eps 0.002 0.008 "
                              "--corruptions jpeg blur --text-variants empty"))
    s.add_argument("--model", required=True, help="model directory (save_pretrained output)")
    s.add_argument("--manifest", required=True, help="study manifest (JSONL)")
    s.add_argument("--out", required=True, help="folder for robustness.json, robustness.md and plots/")
    s.add_argument("--split", default=None, help="manifest split measured (default: test)")
    s.add_argument("--eps", type=float, nargs="*", default=None,
                   help="L-inf budgets on the [0, 1] intensity scale; none given skips the attacks "
                        "(default: 0.5, 1, 2, 4 and 8 / 255)")
    s.add_argument("--attacks", nargs="*", default=None, choices=["fgsm", "pgd"], help="(default: fgsm pgd)")
    s.add_argument("--pgd-steps", type=int, default=None, help="PGD iterations (default: 10)")
    s.add_argument("--corruptions", nargs="*", default=None,
                   help="corruption names, see preprocessing/corruptions.py; none given skips them (default: all 13)")
    s.add_argument("--severities", type=int, nargs="+", default=None, help="severities 1-5 (default: 1 2 3 4 5)")
    s.add_argument("--text-variants", nargs="*", default=None,
                   choices=["empty", "other_study", "negated", "typos"], help="(default: all four)")
    s.add_argument("--batch-size", type=int, default=None, help="studies per batch (default: 16)")
    s.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda:0 (default: CUDA when present)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.robustness.evaluate import robustness

    result = robustness(a.model, a.manifest, out=a.out, progress=not a.quiet,
                        **given(a, split="split", eps="eps", attacks="attacks", pgd_steps="pgd_steps",
                                corruptions="corruptions", severities="severities", text_variants="text_variants",
                                batch_size="batch_size", device="device"))
    print_json({"clean": result["clean"], "out": str(a.out)}, indent=2)
    return 0
