"""`mgll build` as a user sees it: a new salt is announced once, and every error of the file system (a
read-only OUT, linkage or salt path, an unwritable --json path, a full disk while writing a shard, the
rejects or the manifest) is one line with exit status 1 (2 for a --json path refused before the build),
after which the same command resumes. The file-system cases of `card`, `validate`, `label` and `demo
export` ride along in the namespace test.

Read-only paths are tested three ways, because the suite may run as root, for whom chmod stops nothing:
chmod when not root; a real read-only and a real tiny tmpfs inside a user + mount namespace
(`unshare -rm`) when the kernel allows one; and the writer's calls failing with ENOSPC (monkeypatched)
always."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mgll_data import dataset, writer
from mgll_data.cli import main
from mgll_data.demo import write_demo_export

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    write_demo_export(root, studies=3, seed=5, packaged=False, progress=False)
    return root


@pytest.fixture(scope="module")
def salt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("secret") / "salt"
    path.write_text("ab" * 32)
    return path


def _build(export: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["build", str(export), str(out), *extra])


def _one_line_error(result) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def _images(export: Path) -> list[Path]:
    return sorted(export.rglob("*.dcm"))


def _accounted(out: Path) -> dict:
    manifest = dataset.read_manifest(out)
    assert manifest is not None
    rows = sum(pq.read_metadata(p).num_rows for p in dataset.shard_paths(out))
    rejects = pq.read_metadata(out / dataset.REJECTS_FILE).num_rows
    assert rows + rejects == manifest["inputs"] == manifest["rows"] + manifest["rejects"]
    return manifest


def test_a_new_salt_is_announced_once_on_stderr(export: Path, tmp_path: Path) -> None:
    salt = tmp_path / "keys" / "salt"
    first = _build(export, tmp_path / "ds", "--salt-file", str(salt), "--quiet", "--json", "-")
    assert first.exit_code == 0, first.output
    notice = first.stderr
    assert f'created a new pseudonym key (the "salt") at {salt}' in notice
    assert "Back it up" in notice and "secret" in notice and "re-identify" in notice
    assert "pseudonym key" not in first.stdout and json.loads(first.stdout)["inputs"] > 0  # pure JSON
    again = _build(export, tmp_path / "ds", "--salt-file", str(salt), "--quiet")
    assert again.exit_code == 0 and "pseudonym key" not in again.output


def test_the_summary_reads_the_same_whatever_the_output(export: Path, salt: Path, tmp_path: Path) -> None:
    result = _build(export, tmp_path / "ds", "--salt-file", str(salt))
    assert result.exit_code == 0, result.output
    assert "\r" not in result.output  # not a terminal: progress comes as whole lines
    assert result.stderr.splitlines()[0].startswith("build: 0/")
    assert result.stdout.startswith(f"built {tmp_path / 'ds'}")


def _no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    "target",
    ["pyarrow.parquet.ParquetWriter.write_table", "mgll_data.writer.write_rejects", "mgll_data.writer.write_manifest"],
    ids=["shard", "rejects", "manifest"],
)
def test_a_full_disk_is_one_line_and_the_same_command_resumes(export, salt, tmp_path, monkeypatch, target):
    out = tmp_path / "ds"
    with monkeypatch.context() as patch:
        patch.setattr(target, _no_space)
        result = _build(export, out, "--salt-file", str(salt), "--quiet")
    assert result.exit_code == 1
    assert _one_line_error(result) == (
        "Error: the build stopped: No space left on device; free some space; then run the same command again "
        "to resume"
    )
    assert dataset.read_manifest(out) is None  # a stopped build never looks finished
    resumed = _build(export, out, "--salt-file", str(salt), "--quiet")
    assert resumed.exit_code == 0, resumed.output
    assert _accounted(out)["inputs"] == len(_images(export))


def test_a_full_disk_while_journalling_the_linkage_is_one_line(export, salt, tmp_path, monkeypatch):
    monkeypatch.setattr(writer.LinkageJournal, "flush", _no_space)
    result = _build(export, tmp_path / "ds", "--salt-file", str(salt), "--quiet")
    assert result.exit_code == 1 and "No space left on device" in _one_line_error(result)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod; the namespace test covers root")
@pytest.mark.parametrize("where", ["out", "linkage", "salt"])
def test_read_only_folders_are_one_line(export, salt, tmp_path, where):
    locked = tmp_path / "locked"
    locked.mkdir()
    paths = {"out": tmp_path / "ds", "linkage": tmp_path / "ds.linkage.parquet", "salt": salt}
    paths[where] = locked / ("ds" if where == "out" else where)
    locked.chmod(0o555)
    try:
        result = _build(export, paths["out"], "--linkage", str(paths["linkage"]), "--salt-file", str(paths["salt"]))
    finally:
        locked.chmod(0o755)
    assert result.exit_code == 1 and "Permission denied" in _one_line_error(result)


def test_a_read_only_json_path_is_refused_before_the_build(export, salt, tmp_path):
    result = _build(export, tmp_path / "ds", "--salt-file", str(salt), "--json", str(tmp_path / "no" / "s.json"))
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "ds").exists()


def _namespaces_available() -> bool:
    """Whether this kernel and sandbox let an unprivileged process mount a tmpfs in its own namespace."""
    if not shutil.which("unshare"):
        return False
    with tempfile.TemporaryDirectory() as where:
        probe = subprocess.run(["unshare", "-rm", "mount", "-t", "tmpfs", "tmpfs", where], capture_output=True)
    return probe.returncode == 0


# Run inside `unshare -rm` (a user + mount namespace: mounts seen by this process only): READ_ONLY is a
# tmpfs remounted read-only (EROFS even for root), SMALL a 48 KB tmpfs (a real ENOSPC), which is then
# grown to show that re-running the same command resumes.
NAMESPACE_SCRIPT = textwrap.dedent("""
    set -e
    mount -t tmpfs -o size=1m tmpfs "$READ_ONLY" && mkdir "$READ_ONLY/sub" && mount -o remount,ro "$READ_ONLY"
    mount -t tmpfs -o size=48k tmpfs "$SMALL"
    exec "$PYTHON" -c "$CASES" "$@"
""")
CASES = textwrap.dedent("""
    import json, os, subprocess, sys
    from click.testing import CliRunner
    from mgll_data.cli import main
    e, ro, small, salt, tmp = sys.argv[1:6]
    def run(*args):
        r = CliRunner().invoke(main, list(args))
        crash = repr(r.exception) if r.exception and not isinstance(r.exception, SystemExit) else None
        return {"code": r.exit_code, "output": r.output, "stdout": r.stdout, "crash": crash}
    cases = {
        "out": run("build", e, ro + "/ds", "--salt-file", salt, "-q"),
        "linkage": run("build", e, tmp + "/a", "--linkage", ro + "/sub/l.parquet", "--salt-file", salt, "-q"),
        "salt": run("build", e, tmp + "/b", "--salt-file", ro + "/salt", "-q"),
        "json": run("build", e, tmp + "/c", "--salt-file", salt, "-q", "--json", ro + "/s.json"),
        "demo": run("demo", "export", ro + "/export", "--studies", "1", "--no-packaged", "-q"),
        "full": run("build", e, small + "/ds", "--salt-file", salt, "-q"),
    }
    subprocess.run(["mount", "-o", "remount,size=64m", small], check=True)
    cases["resumed"] = run("build", e, small + "/ds", "--salt-file", salt, "-q", "--json", "-")
    cases["card"] = run("card", small + "/ds", "--out", ro + "/card")
    cases["validate"] = run("validate", small + "/ds", "-q", "--json", ro + "/v.json")
    with open(tmp + "/reports.csv", "w") as f:
        f.write("report_id,report\\nr1,Small left pleural effusion.\\n")
    cases["label"] = run("label", tmp + "/reports.csv", "--out", ro + "/labels.csv", "-q")
    print(json.dumps(cases))
""")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not _namespaces_available(), reason="needs `unshare -rm` (user + mount namespaces)")
def test_a_real_read_only_file_system_and_a_real_full_disk(export, salt, tmp_path):
    read_only, small = tmp_path / "read-only", tmp_path / "small"
    read_only.mkdir()
    small.mkdir()
    env = {**os.environ, "READ_ONLY": str(read_only), "SMALL": str(small), "PYTHON": sys.executable, "CASES": CASES}
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", NAMESPACE_SCRIPT, "sh", str(export), str(read_only), str(small),
         str(salt), str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    cases = json.loads(done.stdout.splitlines()[-1])
    for name, case in cases.items():
        assert case["crash"] is None and "Traceback" not in case["output"], (name, case)
    errors = {name: [line for line in case["output"].splitlines() if line.startswith("Error")]
              for name, case in cases.items()}
    expected = {
        "out": (1, f"cannot create {read_only}/ds: Read-only file system"),
        "linkage": (1, f"cannot write {read_only}/sub/l.parquet.lock: Read-only file system"),
        "salt": (1, f"salt file {read_only}/salt cannot be created: Read-only file system"),
        "json": (2, "cannot be written"),
        "demo": (1, "Read-only file system"),
        "full": (1, "the build stopped: No space left on device; free some space; then run the same command"),
        "card": (1, "cannot write the card: Read-only file system"),
        "validate": (2, "cannot be written"),
        "label": (1, "cannot write the labels: Read-only file system"),
    }
    for name, (code, message) in expected.items():
        assert cases[name]["code"] == code, (name, cases[name])
        assert len(errors[name]) == 1 and message in errors[name][0], (name, errors[name])
    resumed = cases["resumed"]
    assert resumed["code"] == 0, resumed
    summary = json.loads(resumed["stdout"])
    assert summary["rows"] + summary["rejects"] == summary["inputs"] == len(_images(export))


@pytest.mark.parametrize("refusal", ["missing export", "foreign OUT", "foreign linkage"])
def test_a_refused_build_creates_no_salt(export, tmp_path, refusal):
    out, linkage = tmp_path / "ds", tmp_path / "ds.linkage.parquet"
    source = tmp_path / "no-such-export" if refusal == "missing export" else export
    if refusal == "foreign OUT":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    if refusal == "foreign linkage":
        linkage.write_text("not a linkage table")
    salt = tmp_path / "keys" / "salt"
    result = _build(source, out, "--salt-file", str(salt), "--linkage", str(linkage))
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert not salt.exists() and "pseudonym key" not in result.output
