"""One run at a time in a run folder: a second `mgll pretrain` into a folder another run is writing is
refused in one line and writes nothing there; a lock left by a run that ended (or was killed) blocks
nothing. flock locks belong to an open file description, so a lock held here conflicts with a second
open of the same file, as another process's would."""

import os

import pytest
from click.testing import CliRunner

from mgll_data.cli import main
from mgll_train.run_lock import RUN_LOCK_FILE, RunFolderError, run_lock

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--model", "tiny", "--text-model", "tiny", "--image-size", "32", "--batch-size", "8", "--embed-dim", "16",
        "--max-steps", "1", "--quiet"]  # fmt: skip


def test_a_held_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    refusal = rf"another mgll pretrain \(process {os.getpid()}\) is writing"
    with run_lock(tmp_path / "run"), pytest.raises(RunFolderError, match=refusal), run_lock(tmp_path / "run"):
        pass
    with run_lock(tmp_path / "run"):  # released when the block ended
        pass


def test_pretrain_into_a_folder_another_run_holds_is_refused_and_writes_nothing(tmp_path, datasets):
    dataset = datasets.write(tmp_path / "ds", rows=datasets.rows(24))
    run = tmp_path / "run"
    with run_lock(run):
        refused = CliRunner().invoke(main, ["pretrain", str(dataset), "--out", str(run), *TINY])
        assert refused.exit_code == 1 and "Traceback" not in refused.output
        assert refused.stderr.strip().splitlines() == [
            f"Error: another mgll pretrain (process {os.getpid()}) is writing {run}; wait for it to finish, "
            "or choose another --out"
        ]
        assert sorted(p.name for p in run.iterdir()) == [RUN_LOCK_FILE]
    # the lock file a finished or killed run leaves does not make the folder someone else's
    done = CliRunner().invoke(main, ["pretrain", str(dataset), "--out", str(run), *TINY])
    assert done.exit_code == 0, done.output
    assert (run / "metrics.jsonl").is_file() and (run / "config.yaml").is_file()


def test_a_run_folder_that_cannot_be_written_is_one_line_before_any_work(tmp_path, datasets):
    dataset = datasets.write(tmp_path / "ds", rows=datasets.rows(24))
    (tmp_path / "file").write_text("not a folder\n")
    run = tmp_path / "file" / "run"
    result = CliRunner().invoke(main, ["pretrain", str(dataset), "--out", str(run), *TINY])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [f"Error: cannot write the run folder {run}: Not a directory"]
