"""The command line documents itself: every option of every command (whatever build_parser() holds,
also commands added later) has a help text stating its default, choices are real values, each
command's help ends with examples, and a default stated for an option passed on with ``given``
is the API function's own default."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import inspect
import re
import textwrap
from pathlib import Path

import pytest

from multimodal.cli import build_parser, main

DEFAULT = re.compile(r"\bdefault: ([^;)]*)")


def _commands(parser: argparse.ArgumentParser, prefix: str = "mmdx"):
    """(command line, parser) of every leaf command, walking nested sub-commands."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from _commands(sub, f"{prefix} {name}")


COMMANDS = list(_commands(build_parser()))


def _options(parser: argparse.ArgumentParser):
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


def test_the_walk_finds_every_command():
    names = {line for line, _ in COMMANDS}
    assert {"mmdx score", "mmdx train", "mmdx evaluate", "mmdx report", "mmdx pacs score"} <= names


@pytest.mark.parametrize("line,parser", COMMANDS, ids=[c for c, _ in COMMANDS])
def test_every_option_has_help_with_its_default_and_valid_choices(line, parser):
    assert parser.epilog and parser.epilog.startswith("examples:") and line in parser.epilog, f"{line}: no examples"
    for action in _options(parser):
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"{line} {name}: no help text"
        if action.choices is not None:
            assert all(c is not None and str(c) != "None" for c in action.choices), f"{line} {name}: choice None"
        takes_value = action.nargs != 0  # flags (store_true) are off unless given
        if action.option_strings and takes_value and not action.required:
            assert DEFAULT.search(action.help), f"{line} {name}: help does not state the default"


def _api_defaults(module: str, function: str) -> dict[str, object]:
    """The literal parameter defaults of ``module.function``, read from its source (importing the API
    modules would load torch and take far longer than this test)."""
    tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text())
    func = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function), None)
    if func is None:  # re-exported by a package's __init__: follow the import
        source = next(n.module for n in tree.body if isinstance(n, ast.ImportFrom) and function in {a.name for a in n.names})
        return _api_defaults(source, function)
    args = func.args.args + func.args.kwonlyargs
    defaults = [None] * (len(func.args.args) - len(func.args.defaults)) + func.args.defaults + func.args.kw_defaults
    out = {}
    for arg, default in zip(args, defaults):
        if default is not None:
            try:
                out[arg.arg] = ast.literal_eval(default)
            except ValueError:  # not a literal (a constant's name): not comparable here
                continue
    return out


def _given_calls(module) -> list[tuple[dict[str, object], dict[str, str]]]:
    """(API defaults, {parameter: namespace attribute}) for each ``f(..., **given(a, ...))`` in the module."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(module)))
    found = []
    for func in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        imports = {alias.asname or alias.name: node.module for node in ast.walk(func) if isinstance(node, ast.ImportFrom)
                   for alias in node.names}
        for call in (n for n in ast.walk(func) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)):
            for kw in call.keywords:
                inner = kw.value
                if kw.arg is None and isinstance(inner, ast.Call) and getattr(inner.func, "id", "") == "given":
                    found.append((_api_defaults(imports[call.func.id], call.func.id),
                                  {k.arg: k.value.value for k in inner.keywords}))
    return found


def _stated_defaults() -> list[tuple[str, str, object, str]]:
    """(command, option, API default, default stated in the help) for options passed on with ``given``."""
    rows = []
    for line, parser in COMMANDS:
        handler = parser.get_default("func")
        by_dest = {a.dest: a for a in _options(parser)}
        for defaults, names in _given_calls(inspect.getmodule(handler)):
            for param, attr in names.items():
                action = by_dest.get(attr)
                if action is None:  # another command of the same module
                    continue
                default = defaults.get(param)
                stated = DEFAULT.search(action.help)
                # Comparable where the API's default is a value (a number or a word); a flag's False or
                # an empty list is stated in words ("refuse the whole run"), which no test can read.
                if isinstance(default, (int, float, str)) and not isinstance(default, bool) and stated:
                    rows.append((line, action.option_strings[0], default, stated.group(1).strip()))
    return rows


def test_a_stated_default_is_the_api_default():
    rows = _stated_defaults()
    assert len(rows) >= 10  # the check is not vacuous
    wrong = [r for r in rows if str(r[2]) != r[3] and not (isinstance(r[2], float) and float(r[3]) == r[2])]
    assert not wrong, f"help states another default than the API: {wrong}"


def test_bad_values_name_the_option_and_the_allowed_values(capsys):
    with pytest.raises(SystemExit):
        main(["score", "--model", "m", "--input", "x", "--out", "o", "--precision", "fp8"])
    err = capsys.readouterr().err
    assert "--precision" in err and "fp32" in err and "bf16" in err and "fp16" in err


def test_an_input_that_is_not_there_is_named_by_its_option(tmp_path, capsys):
    assert main(["report", "--results", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "r")]) == 2
    assert "--results" in capsys.readouterr().err


def test_version():
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
