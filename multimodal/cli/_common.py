"""Helpers shared by the command modules: one parser style, examples in the help, given-only kwargs."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_command(sub: argparse._SubParsersAction, name: str, help: str, description: str | None = None,
                examples: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """A sub-command parser whose help ends with ``examples`` (one command line each)."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) if examples else None
    return sub.add_parser(name, help=help, description=description or help, epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def given(a: argparse.Namespace, **names: str) -> dict[str, Any]:
    """Keyword arguments for the API from the options the user gave: ``names`` maps the API's
    parameter name to the namespace attribute; options left at ``None`` are not passed, so the API's
    own default applies."""
    out = {}
    for param, attr in names.items():
        value = getattr(a, attr)
        if value is not None:
            out[param] = value
    return out


def print_json(obj: Any, indent: int | None = None) -> None:
    print(json.dumps(obj, indent=indent), flush=True)
