"""The ``mmdx`` command line: each command parses its arguments and calls one API function.

Every command lives in its own module of this package (``multimodal/cli/<command>.py``) with a
``register(subparsers)`` function that adds its parser, options and handler; the parser finds them
by listing the package, so adding a command touches one new file. Heavy modules are imported inside
the handlers so that ``mmdx --help`` is instant. Options default to ``None`` and only the values a
user gave are passed on (:func:`multimodal.cli._common.given`), so each default lives once, in the API.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from preprocessing.errors import MmdxError


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mmdx")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The ``mmdx`` parser with every command module of this package registered (in name order)."""
    p = argparse.ArgumentParser(prog="mmdx", description="Multimodal chest-radiograph diagnosis: DICOM + "
                                "clinical text -> findings, diseases and where they are.")
    p.add_argument("--version", action="version", version=f"mmdx {_version()}")
    p.add_argument("--key-file", default=None, metavar="KEY",
                   help="encrypt what mmdx writes (cache, spool, results, SRs) with this key file from "
                        "`mmdx keygen`; same as MMDX_KEY_FILE (default: no encryption)")
    p.add_argument("--audit-log", default=None, metavar="LOG",
                   help="append an audit event for every access to patient data; same as MMDX_AUDIT_LOG "
                        "(default: no audit log)")
    p.add_argument("--umask", default=None, help="octal umask for created files; same as MMDX_UMASK (default: 077)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from multimodal.security import settings

        settings.apply(args.key_file, args.audit_log, args.umask)
        return args.func(args)
    except MmdxError as err:
        print(f"mmdx {args.command}: error: {err}", file=sys.stderr)
        return 2
