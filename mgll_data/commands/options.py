"""The conventions every `mgll` command shares, so one idea has one spelling everywhere.

- `--quiet` / `-q`: no progress bar or progress lines; the end summary and errors still print.
- `--json PATH|-`: the end summary (or results) as JSON into PATH, or alone on stdout with `-`, in which
  case the human summary moves to stderr so a script can pipe stdout straight into `jq`.
- `--workers N` always counts processes; threads are `--threads` (each command's help says what its
  workers do).
- Exit status: 0 done, 1 failed (one line on stderr saying why and what to do), 2 a usage error.
- An error of the operating system (a read-only folder, a full disk) is one line naming the path.

Old spellings (`--no-progress`, `--progress`, a bare `--json`, ...) still work as hidden options that
print one deprecation line, so scripts written against an earlier release keep running.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from mgll_data.output_file import OutputFileError, check_replaceable, read_json, replaced_whole, same_json_shape

F = TypeVar("F", bound=Callable[..., Any])

STDOUT = "-"
_BARE_JSON = "\0bare-json"  # what a bare `--json` parses to: the old flag spelling, meaning stdout
_ALIASES = "mgll.aliases"
_HINTS = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "that file system is mounted read-only",
    errno.EACCES: "check the folder's permissions",
    errno.EPERM: "check the folder's permissions",
}


def describe_os_error(exc: OSError) -> str:
    """One line for an error of the operating system: what failed, on which path, and a hint.

    The reason is the system's own text for the error number: pyarrow puts a longer message in
    `strerror` ("Error writing bytes to file. Detail: [errno 28] No space left on device"), and a few
    errors carry the number only inside their message."""
    code = exc.errno
    found = re.search(r"\[errno (\d+)\]", str(exc), re.IGNORECASE) if code is None else None
    if found:
        code = int(found.group(1))
    reason = os.strerror(code) if code else (str(exc).splitlines() or [type(exc).__name__])[0]
    where = f" ({exc.filename})" if exc.filename else ""
    hint = _HINTS.get(code) if code is not None else None
    return f"{reason}{where}" + (f"; {hint}" if hint else "")


def _warn_old_spelling(old: str, advice: str) -> None:
    click.echo(f"warning: {old} is an old spelling and still works; {advice}", err=True)


def old_spelling(old: str, advice: str, *, dest: str, value: Any = None, type: Any = None) -> Callable[[F], F]:
    """A hidden option `old` for the option `dest`, with one warning line giving `advice`: a flag that sets
    `dest` to `value`, or, given a `type`, an option whose own value becomes `dest`'s.

    Click processes the options given on the command line before the ones left at their default, so
    the old spelling is seen first and the new option (whose callback must be `old_spellings`) takes it."""

    def remember(ctx: click.Context, _param: click.Parameter, given: Any) -> None:
        if given is not None and given is not False:
            _warn_old_spelling(old, advice)
            ctx.meta.setdefault(_ALIASES, {})[dest] = value if type is None else given

    name = f"_old_{dest}_{old.strip('-').replace('-', '_')}"
    if type is None:
        return click.option(old, name, is_flag=True, hidden=True, expose_value=False, callback=remember)
    return click.option(old, name, type=type, default=None, hidden=True, expose_value=False, callback=remember)


def old_spellings(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """The callback of an option that has old spellings: an old spelling given on the command line wins
    over this option's default."""
    source = ctx.get_parameter_source(param.name) if param.name else None
    aliased = ctx.meta.get(_ALIASES, {})
    if param.name in aliased and source in (ParameterSource.DEFAULT, None):
        return aliased[param.name]
    return value


def quiet_option(f: F) -> F:
    """`--quiet` / `-q`, with the old `--no-progress` and `--progress/--no-progress` spellings hidden."""
    f = old_spelling("--no-progress", "use --quiet", dest="quiet", value=True)(f)
    f = old_spelling("--progress", "progress shows unless --quiet is given", dest="quiet", value=False)(f)
    return click.option("--quiet", "-q", is_flag=True, callback=old_spellings,
                        help="No progress bar or progress lines (errors and the end summary still print). "
                             "Progress is drawn as a bar only on a terminal, as a line every 30 s otherwise.")(f)


def json_option(what: str) -> Callable[[F], F]:
    """`--json PATH|-` for `what` (e.g. "the end summary"); a bare `--json` (the old spelling) means `-`."""

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value == _BARE_JSON:
            _warn_old_spelling("a bare --json", "use --json - for JSON on stdout")
            return STDOUT
        if value in (None, STDOUT):
            return value
        path = Path(value)
        if path.is_dir():
            raise click.BadParameter(f"{value} is a folder; give a file path, or - for stdout", ctx, param)
        if not path.parent.is_dir():
            raise click.BadParameter(f"the folder {path.parent} does not exist", ctx, param)
        if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise click.BadParameter(f"{value} cannot be written (no permission, or a read-only file system)",
                                     ctx, param)
        try:  # an earlier summary is replaced; a file that is not even JSON is refused before any work
            check_replaceable(path, lambda p: isinstance(read_json(p), (dict, list)), "a JSON summary")
        except OutputFileError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None
        return value

    return click.option("--json", "json_out", metavar="PATH|-", default=None, is_flag=False, flag_value=_BARE_JSON,
                        callback=check, help=f"Also write {what} as JSON to PATH ('-': JSON alone on stdout, the "
                                             "human summary on stderr).")


def human_echo(json_out: str | None) -> Callable[[str], None]:
    """Where the human summary goes: stdout, or stderr when stdout carries the JSON."""
    to_stderr = json_out == STDOUT
    return lambda line: click.echo(line, err=to_stderr)


def write_json(payload: Any, json_out: str | None) -> None:
    """Write `payload` as JSON where --json said (nothing when it was not given); one-line error if the
    file cannot be written."""
    if json_out is None:
        return
    text = json.dumps(payload, indent=2, default=str)
    if json_out == STDOUT:
        click.echo(text)
        return
    try:
        check_replaceable(Path(json_out), lambda p: same_json_shape(read_json(p), json.loads(text)),
                          "this command's JSON summary")
    except OutputFileError as exc:
        raise click.ClickException(f"--json: {exc}") from None
    try:
        with replaced_whole(Path(json_out)) as partial:
            partial.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write --json {json_out}: {describe_os_error(exc)}") from None
