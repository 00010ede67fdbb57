import random
import shutil

import numpy as np
import pytest
import torch

from mgll_train.checkpoint import (
    CheckpointError,
    find_checkpoint,
    load_newest_intact,
    load_run,
    load_training_state,
    load_weights,
    readable_weights,
    rng_state,
    save_run,
    save_tokenizer,
    set_rng_state,
    verify_checkpoint,
)
from mgll_train.model import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model after one optimizer step, saved twice (steps 1 and 2) into a run folder."""
    run = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    model, cfg = build_model("tiny", "tiny", 16, image_size=32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)
    model.encode_image(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    scheduler.step()
    config = {
        "model": "tiny",
        "image_size": 32,
        "granularities": ["disease"],
        "label_vocabulary": ["A"],
        "mean": cfg["mean"],
        "std": cfg["std"],
    }
    save_tokenizer(run, cfg["tokenizer_dir"])
    save_run(run, model, optimizer, scheduler, 1, config, extra_state={"positions": {0: 8}})
    save_run(run, model, optimizer, scheduler, 2, config, extra_state={"positions": {0: 16}})
    return run, model, optimizer


def test_load_run_rebuilds_the_model_from_the_folder_alone(trained):
    run, model, _ = trained
    loaded = load_run(run)
    assert loaded.step == 2 and loaded.checkpoint_dir.name == "step-00000002"
    assert loaded.config["granularities"] == ["disease"] and loaded.config["image_size"] == 32
    pixels = torch.randn(2, 3, 32, 32)
    model.eval()
    torch.testing.assert_close(loaded.model.encode_image(pixels), model.encode_image(pixels))
    assert not loaded.model.training
    ids = loaded.tokenizer(["pleural effusion"], return_tensors="pt")
    assert loaded.model.encode_text(ids["input_ids"], ids["attention_mask"]).shape == (1, 16)


def test_checkpoints_are_pruned_and_latest_points_at_newest(trained):
    run, _, _ = trained
    assert (run / "latest").read_text().strip() == "step-00000002"
    assert [p.name for p in sorted((run / "checkpoints").glob("step-*"))] == ["step-00000001", "step-00000002"]
    assert find_checkpoint(run, step=1).name == "step-00000001"
    assert find_checkpoint(run / "checkpoints" / "step-00000001") == run / "checkpoints" / "step-00000001"
    with pytest.raises(CheckpointError, match="no checkpoint for step 7"):
        find_checkpoint(run, step=7)


def test_keep_limits_the_number_of_checkpoints(tmp_path):
    model, _ = build_model("tiny", "tiny", 8, image_size=32)
    for step in (1, 2, 3):
        save_run(tmp_path, model, None, None, step, {}, keep=2)
    assert [p.name for p in sorted((tmp_path / "checkpoints").iterdir())] == ["step-00000002", "step-00000003"]


def test_training_state_restores_optimizer_and_data_position(trained):
    run, _, optimizer = trained
    state = load_training_state(find_checkpoint(run))
    assert state["step"] == 2 and state["extra"]["positions"] == {0: 16}
    assert state["scheduler"]["last_epoch"] == 1
    saved = state["optimizer"]["state"]
    live = optimizer.state_dict()["state"]
    assert saved.keys() == live.keys() and saved
    for key in saved:
        torch.testing.assert_close(saved[key]["exp_avg"], live[key]["exp_avg"])


def test_rng_state_round_trip():
    state = rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    set_rng_state(state)
    torch.testing.assert_close(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]


def test_a_half_written_checkpoint_is_ignored(trained, tmp_path):
    run, model, optimizer = trained
    (run / "checkpoints" / ".tmp-step-00000003").mkdir(exist_ok=True)
    assert find_checkpoint(run).name == "step-00000002"
    (tmp_path / "checkpoints" / "step-00000005").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        find_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="run folder not found"):
        load_run(tmp_path / "missing")


def test_weights_of_another_architecture_are_refused(trained):
    run, _, _ = trained
    other, _ = build_model("tiny", "tiny", 24, image_size=32)
    with pytest.raises(CheckpointError, match="does not fit the model"):
        load_weights(other, find_checkpoint(run))


def _flip_bytes(path, count=4000):
    data = bytearray(path.read_bytes())
    for offset in range(len(data) - count, len(data)):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_each_checkpoint_records_checksums_of_its_payloads(trained):
    run, _, _ = trained
    listing = (find_checkpoint(run) / "SHA256SUMS").read_text().splitlines()
    assert [line.split("  ")[1] for line in listing] == ["model.safetensors", "training_state.pt"]
    verify_checkpoint(find_checkpoint(run))


def test_flipped_bytes_in_the_weights_fall_back_to_the_previous_checkpoint(trained, tmp_path):
    run = shutil.copytree(trained[0], tmp_path / "run")
    _flip_bytes(run / "checkpoints" / "step-00000002" / "model.safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors does not match its checksum"):
        verify_checkpoint(run / "checkpoints" / "step-00000002")
    warnings = []
    loaded = load_run(run, warn=warnings.append)
    assert loaded.step == 1 and loaded.checkpoint_dir.name == "step-00000001"
    assert len(warnings) == 1 and "step-00000002" in warnings[0] and "using the older step-00000001" in warnings[0]


def test_no_intact_checkpoint_is_one_error_naming_the_newest_problem(trained, tmp_path):
    run = shutil.copytree(trained[0], tmp_path / "run")
    (run / "checkpoints" / "step-00000002" / "training_state.pt").write_bytes(b"")
    (run / "checkpoints" / "step-00000001" / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(
        CheckpointError,
        match="step-00000002: training_state.pt does not match its checksum .*no older checkpoint is intact",
    ):
        load_newest_intact(run, lambda checkpoint: checkpoint, warn=pytest.fail)


def test_checkpoints_without_checksums_are_still_checked_when_loaded(trained, tmp_path):
    """Checkpoints written before checksums existed: a truncated or empty file is a one-line error, not a crash."""
    run = shutil.copytree(trained[0], tmp_path / "run")
    newest = run / "checkpoints" / "step-00000002"
    (newest / "SHA256SUMS").unlink()
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (newest / "training_state.pt").write_bytes(b"")
    verify_checkpoint(newest)
    with pytest.raises(CheckpointError, match="cannot read the weights in step-00000002 .*truncated"):
        readable_weights(newest)
    with pytest.raises(CheckpointError, match="cannot read training_state.pt in step-00000002 \\(EOFError"):
        load_training_state(newest)
    assert load_run(run, warn=lambda line: None).step == 1
