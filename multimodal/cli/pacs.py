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
    ps.add_argument("--user", default=None, help="HTTP basic-auth user (default: MMDX_PACS_USER, the secrets file "
                                                 "or netrc)")
    ps.add_argument("--password", default=None,
                    help="HTTP basic-auth password; visible in ps, so this warns: prefer MMDX_PACS_PASSWORD, "
                         "--secrets-file or ~/.netrc (default: from those)")
    ps.add_argument("--token", default=None, help="bearer token; warns like --password: prefer MMDX_PACS_TOKEN "
                                                  "(default: from the environment or secrets file)")
    ps.add_argument("--secrets-file", default=None,
                    help="0600 file of user=, password= or token= lines (default: none)")
    ps.add_argument("--allow-http-auth", action="store_true",
                    help="allow credentials over plain http:// (default: refused; MMDX_ALLOW_HTTP_AUTH=1 also allows)")
    ps.add_argument("--insecure", action="store_true",
                    help="do not verify TLS certificates; warns (default: verify)")
    ps.add_argument("--ca-bundle", default=None,
                    help="PEM CA bundle for TLS verification; wins over REQUESTS_CA_BUNDLE (default: the system's)")
    ps.add_argument("--timeout", type=float, default=None, help="seconds per HTTP request (default: 30)")
    ps.set_defaults(func=run_score)


def run_score(a: argparse.Namespace) -> int:
    from multimodal.pacs.dicomweb import score_pacs
    from multimodal.security.secrets import warn_command_line_secret

    for option in ("password", "token"):
        if getattr(a, option):
            warn_command_line_secret(f"--{option}")
    summary = score_pacs(a.url, model_dir=a.model, verify=not a.insecure, allow_http_auth=a.allow_http_auth,
                         **given(a, studies="study", since="since", modality="modality", user="user",
                                 password="password", token="token", ca_bundle="ca_bundle", timeout="timeout",
                                 secrets_file="secrets_file"))
    print_json(summary)
    return 1 if summary["failed"] else 0
