"""The `mgll` command line as documented: every command and subcommand has --help with an example and is
in the README, every command line the README shows parses with today's options, every option the README
names exists, and no command writes a carriage return when its output is not a terminal."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mgll_data.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
OTHER_TOOLS_OPTIONS = {"--no-deps"}  # pip's, in the README's install notes
BENCH_OPTIONS = {option for script in (ROOT / "bench").glob("*.py")
                 for option in re.findall(r"add_argument\(\s*\"(--[a-z0-9-]+)\"", script.read_text(encoding="utf-8"))}


def _commands(group: click.Group = main, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], click.Command]:
    found: dict[tuple[str, ...], click.Command] = {}
    with click.Context(group) as ctx:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, name
            found[(*path, name)] = command
            if isinstance(command, click.Group):
                found.update(_commands(command, (*path, name)))
    return found


COMMANDS = _commands()


def _visible_options(command: click.Command, hidden: bool = False) -> set[str]:
    return {name for p in command.params if isinstance(p, click.Option) and (hidden or not p.hidden)
            for name in (*p.opts, *p.secondary_opts)}


def _readme_parts() -> tuple[list[str], list[str]]:
    """Command lines in the README's code blocks (continuations joined, comments and `torchrun ...
    $(which mgll)` prefixes dropped) and its inline code spans."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", README, flags=re.S | re.M)
    lines = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if "$(which mgll) " in line:
                line = "mgll " + line.split("$(which mgll) ", 1)[1]
            if re.match(r"mgll [a-z]", line):  # not a results table's "mgll  0.703 ..." row
                lines.append(line)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", README, flags=re.S | re.M)
    return lines, re.findall(r"`([^`\n]+)`", prose)


CODE_LINES, SPANS = _readme_parts()


def _split(line: str) -> tuple[tuple[str, ...], click.Command, list[str]]:
    """The command path a README line names, its command, and the rest of its words."""
    words = shlex.split(line.replace("|", " "))[1:]
    for depth in (2, 1):
        if tuple(words[:depth]) in COMMANDS:
            return tuple(words[:depth]), COMMANDS[tuple(words[:depth])], words[depth:]
    raise AssertionError(f"the README shows `{line}`, and mgll has no such command")


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_every_command_has_help_with_an_example_and_is_in_the_readme(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"mgll {' '.join(path)} --help shows no example"
    assert f"mgll {' '.join(path)}" in README, f"the README never mentions mgll {' '.join(path)}"


@pytest.mark.parametrize("line", CODE_LINES)
def test_every_command_line_in_the_readme_parses(line: str, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    path, command, args = _split(line)
    parent = click.Context(main, info_name="mgll")
    command.make_context(" ".join(path), args, parent=parent)  # raises click.UsageError on any drift


def test_every_option_the_readme_names_exists() -> None:
    # an old spelling (a hidden option) may be named where the README says it still works
    every_option = {"--help", "--version", *OTHER_TOOLS_OPTIONS, *BENCH_OPTIONS}.union(
        *(_visible_options(c, hidden=True) for c in COMMANDS.values()))
    for span in SPANS:
        if span.startswith("mgll "):
            path, command, words = _split(span)
            named = {w.split("=")[0] for w in words if w.startswith("--")}
            missing = named - _visible_options(command)
            assert not missing, f"the README's `{span}` names {sorted(missing)}, which mgll {' '.join(path)} lacks"
        elif span.startswith("--"):
            option = span.split()[0].split("=")[0]
            assert option in every_option, f"the README names `{span}`; no mgll command or benchmark has {option}"


def test_the_readme_lists_the_conventions_every_command_follows() -> None:
    for command in COMMANDS.values():
        options = _visible_options(command)
        if "--json" in options:
            json_option = next(p for p in command.params if "--json" in getattr(p, "opts", ()))
            assert json_option.metavar == "PATH|-", f"{command.name}: --json is not --json PATH|-"
        assert "--no-progress" not in options and "--progress" not in options
    assert "--json PATH|-" in README and "--quiet" in README
