"""mmdx pacs: work with a PACS over DICOMweb."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given, print_json


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "pacs", help="work with a PACS over DICOMweb")
    psub = s.add_subparsers(dest="pacs_command", required=True, metavar="PACS_COMMAND")
    ps = add_command(psub, "score", help="score studies without an SR from this model; store SRs back",
                     examples=("mmdx pacs score --url http://pacs/dicom-web --model runs/tiny/best --since 20260101",))
    ps.add_argument("--url", required=True, help="DICOMweb root, e.g. https://pacs/dicom-web")
    ps.add_argument("--model", required=True, help="model directory (save_pretrained output)")
    ps.add_argument("--study", action="append", default=None, metavar="UID",
                    help="StudyInstanceUID to score (repeatable; default: every study found)")
    ps.add_argument("--since", default=None, help="only studies on or after this date, YYYYMMDD (default: all)")
    ps.add_argument("--modality", default=None, help="comma-separated modalities (default: DX,CR)")
    ps.add_argument("--user", default=None, help="HTTP basic-auth user (default: none)")
    ps.add_argument("--password", default=None, help="HTTP basic-auth password (default: none)")
    ps.add_argument("--token", default=None, help="bearer token (default: none)")
    ps.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    ps.add_argument("--ca-bundle", default=None, help="CA bundle for TLS verification (default: the system's)")
    ps.add_argument("--timeout", type=float, default=None, help="seconds per HTTP request (default: 30)")
    ps.set_defaults(func=run_score)


def run_score(a: argparse.Namespace) -> int:
    from multimodal.pacs.dicomweb import score_pacs

    summary = score_pacs(a.url, model_dir=a.model, verify=not a.insecure,
                         **given(a, studies="study", since="since", modality="modality", user="user",
                                 password="password", token="token", ca_bundle="ca_bundle", timeout="timeout"))
    print_json(summary)
    return 1 if summary["failed"] else 0
