"""The ``mmdx`` command line: each command parses its arguments and calls one API function.

Imports of the heavy modules happen inside each command so that ``mmdx --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from preprocessing.errors import MmdxError


def _cmd_inspect(a: argparse.Namespace) -> int:
    from preprocessing.inspect import inspect_paths

    for row in inspect_paths(a.paths, image_size=a.size, preview_dir=a.preview_dir):
        print(json.dumps(row), flush=True)
    return 0


def _cmd_phantom(a: argparse.Namespace) -> int:
    from multimodal.data.phantom import write_phantom_dataset

    manifest = write_phantom_dataset(a.out, studies=a.studies, seed=a.seed, size=a.size)
    print(f"wrote {a.studies} SYNTHETIC phantom studies (not patient data); manifest: {manifest}")
    return 0


def _cmd_manifest(a: argparse.Namespace) -> int:
    from multimodal.data import manifest_writers as mw

    writer = {"dicom": mw.manifest_from_dicom_dir, "nih": mw.manifest_from_nih, "iu": mw.manifest_from_iu}[a.kind]
    out = writer(a.path, out=a.out)
    print(f"manifest: {out}")
    return 0


def _cmd_label(a: argparse.Namespace) -> int:
    from preprocessing.report_labeler import label_jsonl

    n = label_jsonl(a.input, a.out, fields=a.fields.split(","), id_field=a.id_field, observations=a.observations,
                    versus=a.versus)
    print(f"labelled {n} reports -> {a.out}")
    return 0


def _cmd_train(a: argparse.Namespace) -> int:
    from multimodal.training.trainer import train

    result = train(a.config, out=a.out, overrides=a.set, resume=a.resume)
    print(json.dumps({"steps": result.steps, "best": str(result.best) if result.best else None,
                      "last": str(result.last), "best_metrics": result.best_metrics,
                      "stopped_early": result.stopped_early}, indent=2))
    return 0


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from multimodal.evaluation.evaluate import evaluate

    metrics = evaluate(a.model, a.manifest, out=a.out, split=a.split, batch_size=a.batch_size,
                       device=a.device, generate=not a.no_findings)
    print(json.dumps(metrics.get("summary", {}), indent=2))
    return 0


def _cmd_score(a: argparse.Namespace) -> int:
    from multimodal.inference.scoring import score

    summary = score(a.model, a.input, out=a.out, batch_size=a.batch_size, workers=a.workers, threads=a.threads,
                    device=a.device, precision=a.precision, sr_dir=a.sr_dir, heatmap_dir=a.heatmaps,
                    output_format=a.format, generate=not a.no_findings, progress=not a.quiet)
    print(json.dumps(summary))
    return 0


def _cmd_pacs_score(a: argparse.Namespace) -> int:
    from multimodal.pacs.dicomweb import score_pacs

    summary = score_pacs(a.url, model_dir=a.model, studies=a.study, since=a.since, modality=a.modality,
                         user=a.user, password=a.password, token=a.token, verify=not a.insecure,
                         ca_bundle=a.ca_bundle, timeout=a.timeout)
    print(json.dumps(summary))
    return 1 if summary["failed"] else 0


def _cmd_listen(a: argparse.Namespace) -> int:
    from multimodal.pacs.listener import listen

    listen(model_dir=a.model, aet=a.aet, port=a.port, host=a.host, send_to=a.send_to, spool=a.spool,
           allowed_aets=a.allow, quiet_period=a.quiet_period, max_queue=a.max_queue)
    return 0


def _cmd_deid(a: argparse.Namespace) -> int:
    from multimodal.deid.dicom import deidentify_folder

    summary = deidentify_folder(a.input, a.out, salt=a.salt, keep_dates_shifted=a.keep_dates_shifted,
                                allow_burned_in=a.allow_burned_in)
    print(json.dumps(summary))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmdx", description="Multimodal chest-radiograph diagnosis.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("inspect", help="read DICOM/PNG/JPEG files and print one JSON line per file")
    s.add_argument("paths", nargs="+")
    s.add_argument("--size", type=int, default=None, help="preprocess to this square size (px)")
    s.add_argument("--preview-dir", default=None, help="write a preview PNG per file here")
    s.set_defaults(func=_cmd_inspect)

    s = sub.add_parser("phantom", help="write synthetic chest-like DICOM studies and a manifest")
    s.add_argument("--out", required=True)
    s.add_argument("--studies", type=int, default=200)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=int, default=256)
    s.set_defaults(func=_cmd_phantom)

    s = sub.add_parser("manifest", help="write a study manifest (JSONL) from a dataset layout")
    s.add_argument("kind", choices=["dicom", "nih", "iu"])
    s.add_argument("path")
    s.add_argument("--out", default=None, help="manifest path (default: beside the input)")
    s.set_defaults(func=_cmd_manifest)

    s = sub.add_parser("label", help="label report text: observations with negation, uncertainty, zones")
    s.add_argument("--input", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--fields", default="findings,impression")
    s.add_argument("--id-field", default=None, help="input field copied as the id (default: id/uid/study_id)")
    s.add_argument("--observations", default="chexpert")
    s.add_argument("--versus", default="both", choices=["both", "uncertain"],
                   help='"X versus Y": both sides as stated (IU coders, default) or both uncertain (CheXpert)')
    s.set_defaults(func=_cmd_label)

    s = sub.add_parser("train", help="fine-tune a model from a YAML config")
    s.add_argument("--config", required=True)
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    s.add_argument("--out", required=True, help="run directory")
    s.add_argument("--resume", action="store_true")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("evaluate", help="metrics and pictures for a model on a manifest")
    s.add_argument("--model", required=True)
    s.add_argument("--manifest", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--split", default="test")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--device", default=None)
    s.add_argument("--no-findings", action="store_true", help="skip findings generation")
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser("score", help="batch-score folders, manifests or files (resumable)")
    s.add_argument("--model", required=True)
    s.add_argument("--input", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--workers", type=int, default=None)
    s.add_argument("--threads", type=int, default=None,
                   help="CPU model: batches run at once, one torch thread each "
                        "(default: torch's thread count, i.e. the cores or OMP_NUM_THREADS)")
    s.add_argument("--device", default=None)
    s.add_argument("--precision", default=None, choices=[None, "fp32", "bf16", "fp16"])
    s.add_argument("--sr-dir", default=None)
    s.add_argument("--heatmaps", default=None)
    s.add_argument("--format", default="jsonl", choices=["jsonl", "csv", "parquet"])
    s.add_argument("--no-findings", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_cmd_score)

    s = sub.add_parser("pacs", help="work with a PACS over DICOMweb")
    psub = s.add_subparsers(dest="pacs_command", required=True)
    ps = psub.add_parser("score", help="score studies without an SR from this model; store SRs back")
    ps.add_argument("--url", required=True)
    ps.add_argument("--model", required=True)
    ps.add_argument("--study", action="append", default=None)
    ps.add_argument("--since", default=None, help="YYYYMMDD")
    ps.add_argument("--modality", default="DX,CR")
    ps.add_argument("--user", default=None)
    ps.add_argument("--password", default=None)
    ps.add_argument("--token", default=None)
    ps.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    ps.add_argument("--ca-bundle", default=None)
    ps.add_argument("--timeout", type=float, default=30.0)
    ps.set_defaults(func=_cmd_pacs_score)

    s = sub.add_parser("listen", help="DICOM Storage SCP: receive, score, send the SR")
    s.add_argument("--model", required=True)
    s.add_argument("--aet", default="MMDX")
    s.add_argument("--port", type=int, default=11112)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--send-to", default=None, metavar="AET@HOST:PORT")
    s.add_argument("--spool", default="mmdx-spool")
    s.add_argument("--allow", action="append", default=None, metavar="AET", help="allowed calling AE titles")
    s.add_argument("--quiet-period", type=float, default=5.0, help="seconds without new instances")
    s.add_argument("--max-queue", type=int, default=64)
    s.set_defaults(func=_cmd_listen)

    s = sub.add_parser("deid", help="de-identify DICOM files (PS3.15 Basic Profile)")
    s.add_argument("--input", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--salt", default=None)
    s.add_argument("--keep-dates-shifted", action="store_true")
    s.add_argument("--allow-burned-in", action="store_true")
    s.set_defaults(func=_cmd_deid)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MmdxError as err:
        print(f"mmdx {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
