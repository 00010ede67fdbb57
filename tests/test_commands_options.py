"""The shared option spellings: --quiet and its old spellings, --json PATH|- and the bare old flag, one-line
errors for an unwritable JSON path and for operating-system errors."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mgll_data.commands.options import (
    describe_os_error,
    human_echo,
    json_option,
    old_spelling,
    old_spellings,
    quiet_option,
    write_json,
)


@click.command()
@click.option("--name", default="x")
@click.option("--threads", default=2, type=click.IntRange(1, 8), callback=old_spellings)
@old_spelling("--workers", "use --threads", dest="threads", type=click.IntRange(1, 8))
@json_option("the summary")
@quiet_option
def tool(name: str, threads: int, json_out: str | None, quiet: bool) -> None:
    human_echo(json_out)(f"human {name} quiet={quiet} threads={threads}")
    write_json({"name": name, "quiet": quiet}, json_out)


def _run(*args: str):
    return CliRunner().invoke(tool, list(args))


@pytest.mark.parametrize(
    "args, quiet, warned",
    [
        ([], False, False),
        (["--quiet"], True, False),
        (["-q"], True, False),
        (["--no-progress"], True, True),
        (["--progress"], False, True),
        (["--no-progress", "--quiet"], True, True),
    ],
)
def test_quiet_and_its_old_spellings(args, quiet, warned) -> None:
    result = _run(*args)
    assert result.exit_code == 0, result.output
    assert f"quiet={quiet}" in result.stdout
    assert ("old spelling" in result.stderr) == warned
    assert result.stderr.count("old spelling") <= 1
    assert "--no-progress" not in _run("--help").output and "--progress" not in _run("--help").output


@pytest.mark.parametrize(
    "args, threads, warned",
    [
        ([], 2, False),
        (["--threads", "3"], 3, False),
        (["--workers", "4"], 4, True),
        (["--workers", "4", "--threads", "5"], 5, True),
    ],
)
def test_a_renamed_option_with_a_value_still_takes_its_old_name(args, threads, warned) -> None:
    result = _run(*args)
    assert result.exit_code == 0, result.output
    assert f"threads={threads}" in result.stdout and ("--workers is an old spelling" in result.stderr) == warned
    assert _run("--workers", "9").exit_code == 2  # the old spelling is checked like the new one


def test_evaluate_counts_threads_as_threads() -> None:
    from mgll_data.commands.evaluate import evaluate

    args = ["run", "ds", "--task", "all", "--out", "o"]
    assert evaluate.make_context("evaluate", [*args, "--workers", "3"]).params["workers"] == 3
    assert evaluate.make_context("evaluate", [*args, "--threads", "5"]).params["workers"] == 5
    assert "--threads" in evaluate.get_help(click.Context(evaluate)) and "--workers" not in evaluate.get_help(
        click.Context(evaluate))


def test_json_to_stdout_moves_the_human_summary_to_stderr(tmp_path: Path) -> None:
    result = _run("--json", "-", "--name", "a")
    assert result.exit_code == 0 and json.loads(result.stdout) == {"name": "a", "quiet": False}
    assert "human a" in result.stderr and "old spelling" not in result.stderr
    to_file = _run("--json", str(tmp_path / "s.json"))
    assert "human x" in to_file.stdout
    assert json.loads((tmp_path / "s.json").read_text())["name"] == "x"


@pytest.mark.parametrize("args", [["--json"], ["--json", "--quiet"], ["--quiet", "--json"]])
def test_a_bare_json_is_the_old_spelling_of_json_stdout(args) -> None:
    result = _run(*args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "x"
    assert "a bare --json is an old spelling" in result.stderr


@pytest.mark.parametrize(
    "target, message",
    [("FOLDER", "is a folder"), ("FOLDER/missing/s.json", "does not exist")],
)
def test_a_json_path_that_cannot_be_written_is_a_usage_error(tmp_path: Path, target: str, message: str) -> None:
    result = _run("--json", target.replace("FOLDER", str(tmp_path)))
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


def test_a_json_write_that_fails_late_is_one_line(tmp_path: Path, monkeypatch) -> None:
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", full)
    result = _run("--json", str(tmp_path / "s.json"))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: cannot write --json {tmp_path / 's.json'}: No space left on device ({tmp_path / 's.json'}); "
        "free some space"
    )


@pytest.mark.parametrize(
    "exc, expected",
    [
        (OSError(errno.ENOSPC, "No space left on device", "/o/data/x"),
         "No space left on device (/o/data/x); free some space"),
        (PermissionError(errno.EACCES, "Permission denied", "/o"),
         "Permission denied (/o); check the folder's permissions"),
        (OSError(errno.EROFS, "Read-only file system", "/o"),
         "Read-only file system (/o); that file system is mounted read-only"),
        (OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device"),
         "No space left on device; free some space"),
        (OSError("Error writing bytes to file. Detail: [errno 28] No space left on device"),
         "No space left on device; free some space"),
        (OSError("something odd\nsecond line"), "something odd"),
    ],
)
def test_os_errors_read_as_one_line(exc: OSError, expected: str) -> None:
    assert describe_os_error(exc) == expected
