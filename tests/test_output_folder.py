"""Claiming OUT: a build never writes into the export, never deletes a file mgll did not write, refuses a
changed export in one line, and two builds never write one OUT (or one linkage table) at once.

Every command a user can run against OUT is tried with a file planted in the would-be OUT and one in the
export; both must survive, and so must every file of the export.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mgll_data import dataset, output_folder
from mgll_data.cli import main
from mgll_data.demo import write_demo_export
from mgll_data.output_folder import OutputFolderError
from mgll_data.validate import validate_dataset

PLANTED = "important.txt"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pristine") / "export"
    write_demo_export(root, studies=2, seed=5)
    return root


@pytest.fixture(scope="module")
def salt(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("secret") / "salt"


def snapshot(root: Path) -> dict[str, str]:
    """Every file under root with its content hash: what must be unchanged after a refused command."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def plant(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PLANTED
    path.write_text(f"precious, not mgll's: {folder.name}\n")
    return path


def build(export: Path, out: Path, salt: Path, *extra: str):
    return CliRunner().invoke(main, ["build", str(export), str(out), "--salt-file", str(salt), "--quiet", *extra])


def refused_in_one_line(result, *words: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    for word in words:
        assert word in result.output, result.output


# -- the would-be OUT and the export ------------------------------------------------------------------------

LAYOUTS = {
    # name: (where the export goes, where OUT goes, words of the refusal) relative to a scratch folder
    "out is the export": ("export", "export", ["is the export itself"]),
    "out inside the export": ("export", "export/derived", ["inside the export"]),
    "export inside out": ("work/export", "work", ["does not hold the export"]),
    "out is a non-empty folder": ("export", "home", ["not an mgll dataset", PLANTED]),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_refused_layouts_change_nothing(layout: str, pristine: Path, salt: Path, tmp_path: Path) -> None:
    export_rel, out_rel, words = LAYOUTS[layout]
    export, out = tmp_path / export_rel, tmp_path / out_rel
    shutil.copytree(pristine, export)
    planted_in_export = plant(export)
    planted_in_out = plant(out) if out != export and export not in out.parents else None
    export_before, out_existed = snapshot(export), out.exists()
    for extra in ([], ["--overwrite"]):
        refused_in_one_line(build(export, out, salt, *extra), *words)
        assert snapshot(export) == export_before
        assert planted_in_export.read_text().startswith("precious")
        if planted_in_out is not None:
            assert planted_in_out.read_text().startswith("precious")
        assert out.exists() == out_existed, "a refused build creates nothing"
        assert not list(tmp_path.rglob(f"*{dataset.MANIFEST_FILE}"))


def test_a_persons_file_beside_a_dataset_survives_resume_and_overwrite(pristine, salt, tmp_path) -> None:
    export, out = tmp_path / "export", tmp_path / "ds"
    shutil.copytree(pristine, export)
    plant(export)
    export_before = snapshot(export)
    assert build(export, out, salt).exit_code == 0
    planted = plant(out)
    (out / dataset.CARD_FILE).write_text("# My own notes on this dataset\n")
    (out / "analysis").mkdir()
    (out / "analysis" / "table.parquet").write_bytes(b"mine")
    for extra in ([], ["--overwrite"]):
        result = build(export, out, salt, *extra)
        assert result.exit_code == 0, result.output
        assert planted.read_text().startswith("precious")
        assert (out / dataset.CARD_FILE).read_text() == "# My own notes on this dataset\n"
        assert (out / "analysis" / "table.parquet").read_bytes() == b"mine"
        assert snapshot(export) == export_before
        assert validate_dataset(out).ok
    inputs = len(list(export.rglob("*.dcm")))
    assert f"inputs {inputs}:" in result.output and "already built" not in result.output, "--overwrite rebuilt it"


def test_a_file_in_the_data_folder_is_refused_not_deleted(pristine, salt, tmp_path) -> None:
    out = tmp_path / "ds"
    assert build(pristine, out, salt).exit_code == 0
    stray = dataset.data_dir(out) / "extra.parquet"
    stray.write_bytes(b"someone's table")
    for extra in ([], ["--overwrite"]):
        refused_in_one_line(build(pristine, out, salt, *extra), "did not write", "extra.parquet")
        assert stray.read_bytes() == b"someone's table"
    assert dataset.shard_paths(out), "the dataset itself is untouched too"


def test_a_killed_build_without_manifest_resumes_and_a_foreign_folder_like_it_does_not(pristine, salt, tmp_path):
    out = tmp_path / "ds"
    assert build(pristine, out, salt).exit_code == 0
    (out / dataset.MANIFEST_FILE).unlink()  # as if killed before the end
    assert build(pristine, out, salt).exit_code == 0
    (out / dataset.MANIFEST_FILE).unlink()
    plant(out)
    refused_in_one_line(build(pristine, out, salt, "--overwrite"), "not an mgll dataset")
    assert (out / PLANTED).exists() and dataset.shard_paths(out)


def test_linkage_inside_the_export_is_refused(pristine, salt, tmp_path) -> None:
    before = snapshot(pristine)
    result = build(pristine, tmp_path / "ds", salt, "--linkage", str(pristine / "links.parquet"))
    refused_in_one_line(result, "outside the export")
    assert snapshot(pristine) == before


def test_a_linkage_path_holding_another_file_is_refused_before_overwrite_deletes_anything(pristine, salt, tmp_path):
    out, results = tmp_path / "ds", tmp_path / "results.parquet"
    assert build(pristine, out, salt).exit_code == 0
    pq.write_table(pq.read_table(dataset.shard_paths(out)[0]).select(["image_id"]), results)
    before = snapshot(out)
    refused_in_one_line(build(pristine, out, salt, "--overwrite", "--linkage", str(results)),
                        "not an mgll linkage table")
    assert snapshot(out) == before and pq.read_table(results).num_rows


def test_paths_are_compared_resolved(tmp_path: Path) -> None:
    (tmp_path / "export").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "export")
    with pytest.raises(OutputFolderError, match="export itself"):
        output_folder.check_paths(tmp_path / "export", tmp_path / "alias", tmp_path / "l.parquet")


def test_clear_deletes_only_what_mgll_wrote(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    data = dataset.data_dir(out)
    data.mkdir(parents=True)
    ours = [data / dataset.shard_name("train", 0), dataset.temporary_path(data / dataset.shard_name("test", 1)),
            data / "part-00000.parquet", out / dataset.MANIFEST_FILE, out / dataset.REJECTS_FILE,
            out / dataset.CHARTS_DIR / dataset.CHARTS["labels"]]
    (out / dataset.CHARTS_DIR).mkdir()
    for path in ours:
        path.write_bytes(b"x")
    (out / dataset.CARD_FILE).write_text(f"---\n---\n{dataset.CARD_MARKER}\n# card")
    theirs = [out / "notes.txt", out / ".hidden.tmp", out / dataset.CHARTS_DIR / "my_chart.png"]
    for path in theirs:
        path.write_bytes(b"mine")
    deleted = output_folder.clear(out)
    assert sorted(deleted) == sorted(ours + [out / dataset.CARD_FILE])
    assert all(p.read_bytes() == b"mine" for p in theirs)
    assert not data.exists() and (out / dataset.CHARTS_DIR).is_dir()


# -- a changed export ----------------------------------------------------------------------------------------


def test_an_input_deleted_since_the_last_build_is_a_one_line_refusal(pristine, salt, tmp_path) -> None:
    export, out = tmp_path / "export", tmp_path / "ds"
    shutil.copytree(pristine, export)
    assert build(export, out, salt).exit_code == 0
    sorted(export.rglob("*.dcm"))[0].unlink()
    inputs = len(list(export.rglob("*.dcm")))
    refused_in_one_line(build(export, out, salt), f"1 of its {inputs + 1}", "--overwrite")
    assert build(export, out, salt, "--overwrite").exit_code == 0
    assert validate_dataset(out).ok


def test_building_another_export_into_a_dataset_is_a_one_line_refusal(pristine, salt, tmp_path) -> None:
    other = tmp_path / "other"
    write_demo_export(other, studies=1, seed=9)
    out = tmp_path / "ds"
    assert build(pristine, out, salt).exit_code == 0
    before = snapshot(out)
    inputs = len(list(pristine.rglob("*.dcm")))
    refused_in_one_line(build(other, out, salt), "not in", f"all {inputs} of them", "new folder")
    assert snapshot(out) == before


# -- one build at a time -------------------------------------------------------------------------------------

GATED_BUILD = """
import sys, time
from pathlib import Path
import mgll_data.build as build_module
from mgll_data.engines.local import run_local

export, out, salt, linkage, ready, go = map(Path, sys.argv[1:7])

def gated(items, ctx, workers):
    for n, outcome in enumerate(run_local(items, ctx, workers)):
        if n == 2:  # mid-build, with the journal open: let the test start a second build, then go on
            ready.touch()
            while not go.exists():
                time.sleep(0.05)
        yield outcome

build_module.get_engine = lambda name, **kw: gated
build_module.build_dataset(export, out, "mimic-cxr", salt_file=salt, linkage=linkage, progress=False)
"""


def wait_for(path: Path, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "the first build never reached its gate"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("second", ["same OUT", "same linkage, other OUT"])
def test_a_second_concurrent_build_is_refused_and_the_first_keeps_its_linkage(pristine, salt, tmp_path, second):
    out, linkage = tmp_path / "ds", tmp_path / "private" / "ds.linkage.parquet"
    ready, go = tmp_path / "ready", tmp_path / "go"
    first = subprocess.Popen([sys.executable, "-c", GATED_BUILD, *map(str, (pristine, out, salt, linkage, ready, go))],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(ready, first)
        second_out = out if second == "same OUT" else tmp_path / "other"
        extra = ["--overwrite"] if second == "same OUT" else []
        cli = [sys.executable, "-c", "from mgll_data.cli import main; main()"]
        clash = subprocess.run([*cli, "build", str(pristine), str(second_out), "--salt-file", str(salt),
                                "--linkage", str(linkage), "--quiet", *extra],
                               capture_output=True, text=True, timeout=120)
        assert clash.returncode == 1, clash.stderr
        assert "another mgll build" in clash.stderr and f"process {first.pid}" in clash.stderr
        assert "Traceback" not in clash.stderr and len(clash.stderr.strip().splitlines()) == 1
    finally:
        go.touch()
        _, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr.decode()[-2000:]
    entries = pq.read_table(linkage).to_pylist()
    rows = {i for shard in dataset.shard_paths(out) for i in pq.read_table(shard).column("image_id").to_pylist()}
    assert len(entries) == len(list(pristine.rglob("*.dcm")))
    assert {e["image_id"] for e in entries if e["kind"] == "row"} == rows
    assert validate_dataset(out, linkage=linkage).ok


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom pathlib import Path\nfrom mgll_data.output_folder import exclusive_lock\n"
        "with exclusive_lock(Path(sys.argv[1]), 'x'):\n    print('held', flush=True)\n    time.sleep(600)\n"
    ), str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputFolderError, match=f"process {holder.pid}"), output_folder.exclusive_lock(lock, "x"):
            pass
    finally:
        os.kill(holder.pid, 9)
        holder.wait(timeout=30)
    with output_folder.exclusive_lock(lock, "x"):
        assert lock.exists()
