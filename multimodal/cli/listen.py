"""mmdx listen: a DICOM Storage SCP that scores what it receives and sends the SR back."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "listen", help="DICOM Storage SCP: receive, score, send the SR",
                    examples=("mmdx listen --aet MMDX --port 11112 --model runs/tiny/best --send-to PACS@pacs:104",))
    s.add_argument("--model", required=True, help="model directory (save_pretrained output)")
    s.add_argument("--aet", default=None, help="this listener's AE title (default: MMDX)")
    s.add_argument("--port", type=int, default=None, help="TCP port (default: 11112)")
    s.add_argument("--host", default=None, help="address to bind (default: 127.0.0.1)")
    s.add_argument("--send-to", default=None, metavar="AET@HOST:PORT",
                   help="C-STORE each SR to this peer (default: keep SRs in the spool)")
    s.add_argument("--spool", default=None, help="spool folder for received instances (default: mmdx-spool)")
    s.add_argument("--allow", action="append", default=None, metavar="AET",
                   help="allowed calling AE title (repeatable; default: any)")
    s.add_argument("--quiet-period", type=float, default=None,
                   help="seconds without new instances before a study is scored (default: 5)")
    s.add_argument("--max-queue", type=int, default=None, help="studies waiting to be scored at most (default: 64)")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.pacs.listener import listen

    listen(model_dir=a.model, **given(a, aet="aet", port="port", host="host", send_to="send_to", spool="spool",
                                      allowed_aets="allow", quiet_period="quiet_period", max_queue="max_queue"))
    return 0
