"""mmdx listen: a DICOM Storage SCP that scores what it receives and sends the SR back."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "listen", help="DICOM Storage SCP: receive, score, send the SR",
                    examples=("mmdx listen --aet MMDX --port 11112 --model runs/tiny/best --send-to PACS@pacs:104",
                              "mmdx listen --host 0.0.0.0 --allow PACS --allow-network 10.1.0.0/16 --model m "
                              "--tls-cert node.pem --tls-key node.key --tls-ca hospital-ca.pem --send-to PACS@pacs:2762"))
    s.add_argument("--model", required=True, help="model directory (save_pretrained output)")
    s.add_argument("--aet", default=None, help="this listener's AE title (default: MMDX)")
    s.add_argument("--port", type=int, default=None, help="TCP port (default: 11112)")
    s.add_argument("--host", default=None, help="address to bind (default: 127.0.0.1)")
    s.add_argument("--send-to", default=None, metavar="AET@HOST:PORT",
                   help="C-STORE each SR to this peer (default: keep SRs in the spool)")
    s.add_argument("--spool", default=None, help="spool folder for received instances (default: mmdx-spool)")
    s.add_argument("--allow", action="append", default=None, metavar="AET[:store]",
                   help="allowed calling AE title; AET:store may store but its SRs are not sent (repeatable; "
                        "default: any AE, accepted only on a loopback --host)")
    s.add_argument("--allow-network", action="append", default=None, metavar="CIDR",
                   help="allowed source network, e.g. 10.1.0.0/16 (repeatable; default: any, loopback only)")
    s.add_argument("--tls-cert", default=None, help="PEM certificate chain: turns TLS on (default: no TLS)")
    s.add_argument("--tls-key", default=None, help="PEM private key of --tls-cert (default: none)")
    s.add_argument("--tls-ca", default=None,
                   help="PEM CA(s) that sign the peers' certificates (default: the system's)")
    s.add_argument("--tls-no-client-cert", action="store_true",
                   help="accept TLS clients without a certificate (default: require one)")
    s.add_argument("--quiet-period", type=float, default=None,
                   help="seconds without new instances before a study is scored (default: 5)")
    s.add_argument("--max-queue", type=int, default=None, help="studies waiting to be scored at most (default: 64)")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.pacs.listener import listen

    listen(model_dir=a.model, **given(a, aet="aet", port="port", host="host", send_to="send_to", spool="spool",
                                      allowed_aets="allow", quiet_period="quiet_period", max_queue="max_queue",
                                      allowed_networks="allow_network", tls_cert="tls_cert", tls_key="tls_key",
                                      tls_ca="tls_ca"),
           tls_require_client_cert=not a.tls_no_client_cert)
    return 0
