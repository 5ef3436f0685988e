"""mmdx audit: check the hash chain of an audit log."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, print_json


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "audit", help="work with the audit trail")
    asub = s.add_subparsers(dest="audit_command", required=True, metavar="AUDIT_COMMAND")
    v = add_command(asub, "verify", help="detect edited, removed or reordered lines in an audit log",
                    examples=("mmdx audit verify /var/log/mmdx/audit.jsonl",))
    v.add_argument("log", help="the audit log (JSON lines written with MMDX_AUDIT_LOG / --audit-log)")
    v.set_defaults(func=run_verify)


def run_verify(a: argparse.Namespace) -> int:
    from multimodal.security.audit import verify

    report = verify(a.log)
    print_json(report, indent=2)
    return 0 if report["ok"] else 1
