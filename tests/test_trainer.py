import itertools
import json
import shutil

import pytest
import torch
import yaml
from safetensors.torch import load_file

from mgll_train.config import TrainConfig
from mgll_train.run_log import corrupt_beyond_cap
from mgll_train.schedule import WarmupCosine
from mgll_train.trainer import TrainError, resolve_granularities, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, datasets):
    return datasets.write_learnable(tmp_path_factory.mktemp("ds"), rows=64, corrupt_rows=(4,))


def tiny(dataset, out, **overrides) -> TrainConfig:
    values = dict(
        dataset=str(dataset), out=str(out), model="tiny", text_model="tiny", image_size=32, batch_size=8,
        embed_dim=32, lr=2e-3, log_every=1, save_every=1000, max_steps=6, shuffle_buffer=16,
    )
    values.update(overrides)
    return TrainConfig(**values)


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_default_granularities_drop_near_constant_ones():
    five = ("modality", "category", "disease", "description", "explanation")
    assert resolve_granularities(None, five) == ["category", "disease", "description", "explanation"]
    assert resolve_granularities(["explanation", "disease"], five) == ["disease", "explanation"]
    assert resolve_granularities(None, ("modality",)) == ["modality"]
    with pytest.raises(TrainError, match="no text column for granularities \\['study'\\]"):
        resolve_granularities(["study"], five)


def test_warmup_then_cosine_to_min_ratio():
    schedule = WarmupCosine(warmup=4, total=20, min_ratio=0.1)
    assert [schedule(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert schedule(12) == pytest.approx(0.55)
    assert schedule(20) == pytest.approx(0.1) and schedule(30) == pytest.approx(0.1)


def test_run_folder_is_complete(dataset, tmp_path):
    """(That the loss falls over 40 steps is asserted in test_pretrain_cli, through the command.)"""
    run = tmp_path / "run"
    summary = train(tiny(dataset, run, max_steps=12, save_every=4), progress=False)
    assert len(summary.losses) == 12 and summary.corrupt_images == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000008", "step-00000012"]
    assert (run / "latest").read_text().strip() == "step-00000012"
    weights = load_file(run / "checkpoints" / "step-00000012" / "model.safetensors")
    assert "logit_scale" in weights and any(k.startswith("vision.") for k in weights)
    rows = metrics(run)
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert {"loss", "soft_clip", "point", "skl", "lr", "samples_per_second", "logit_scale", "grad_norm"} <= set(rows[0])
    assert rows[-1]["lr"] == pytest.approx(0.0)
    assert (run / "config.yaml").is_file() and (run / "tokenizer").is_dir()


def test_resume_reproduces_the_uninterrupted_run(dataset, tmp_path):
    straight = tmp_path / "straight"
    train(tiny(dataset, straight, max_steps=12, save_every=6, keep_checkpoints=5), progress=False)
    interrupted = tmp_path / "interrupted"
    shutil.copytree(straight, interrupted)
    shutil.rmtree(interrupted / "checkpoints" / "step-00000012")
    (interrupted / "latest").write_text("step-00000006\n")

    summary = train(
        tiny(dataset, interrupted, max_steps=12, save_every=6, keep_checkpoints=5), resume=True, progress=False
    )

    assert summary.start_step == 6 and summary.steps == 12
    a = load_file(straight / "checkpoints" / "step-00000012" / "model.safetensors")
    b = load_file(interrupted / "checkpoints" / "step-00000012" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert [r["step"] for r in metrics(interrupted)] == list(range(1, 13))
    for x, y in zip(metrics(straight), metrics(interrupted)):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-4) and x["lr"] == pytest.approx(y["lr"])


def test_a_moved_end_replans_the_cosine_without_a_jump():
    schedule = WarmupCosine(warmup=2, total=10, min_ratio=0.0)
    before = [schedule(s) for s in range(6)]
    message = schedule.replan(5, 20)
    assert "continues from the lr reached at step 5" in message
    after = [schedule(s) for s in range(5, 21)]
    assert after[0] == pytest.approx(before[5])
    assert all(a >= b for a, b in zip(after, after[1:])) and after[-1] == pytest.approx(0.0)
    assert schedule(6) > WarmupCosine(2, 10)(6)  # the slope flattened: more steps to decay over
    assert schedule.replan(20, 20) == ""


def test_extending_a_finished_run_restarts_the_cosine_and_says_so():
    schedule = WarmupCosine(warmup=2, total=10)
    assert schedule(10) == pytest.approx(0.0)
    assert "a warm restart" in schedule.replan(10, 16)
    assert (
        schedule(10) == pytest.approx(1.0) and schedule(13) == pytest.approx(0.5) and schedule(16) == pytest.approx(0.0)
    )


def test_resume_to_more_steps_continues_counter_and_schedule(dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny(dataset, run, max_steps=8, save_every=4, keep_checkpoints=5), progress=False)
    lr_8_step_run = [r["lr"] for r in metrics(run)]
    shutil.rmtree(run / "checkpoints" / "step-00000008")
    (run / "latest").write_text("step-00000004\n")
    said = []
    summary = train(tiny(dataset, run, max_steps=12), resume=True, progress=False, echo=said.append)
    assert (summary.start_step, summary.steps) == (4, 12)
    assert any("cosine continues from the lr reached at step 4" in line for line in said)
    rows = metrics(run)
    assert [r["step"] for r in rows] == list(range(1, 13))
    lrs = [r["lr"] for r in rows]
    assert lrs[:4] == pytest.approx(lr_8_step_run[:4])
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:])) and lrs[-1] == pytest.approx(0.0)
    assert lrs[4] > lr_8_step_run[4]
    with pytest.raises(TrainError, match="already at step 12"):
        train(tiny(dataset, run, max_steps=12), resume=True, progress=False)


def test_the_run_summary_reports_the_losses_metrics_jsonl_holds(dataset, tmp_path):
    run = tmp_path / "run"
    summary = train(tiny(dataset, run, max_steps=7, log_every=3), progress=False)
    rows = metrics(run)
    assert [r["step"] for r in rows] == [1, 3, 6, 7]
    assert summary.first_loss == rows[0]["loss"] and summary.last_loss == rows[-1]["loss"]
    assert summary.last_loss_steps == (7, 7)
    assert rows[2]["loss"] == pytest.approx(sum(summary.losses[3:6]) / 3, rel=1e-5)
    assert 0 < summary.first_step_seconds <= summary.seconds + 60


@pytest.mark.parametrize("interval, logged", [(0.0, [1, 3, 6, 7]), (3600.0, [7])])
def test_off_a_terminal_progress_is_plain_lines_of_logged_steps(
    dataset, tmp_path, capsys, monkeypatch, interval, logged
):
    """stderr is not a terminal here: no bar (no carriage return), a line per logged step at most every
    LINE_INTERVAL_S, and always one for the last logged step, with the loss metrics.jsonl holds."""
    monkeypatch.setattr("mgll_train.run_log.LINE_INTERVAL_S", interval)
    run = tmp_path / "run"
    train(tiny(dataset, run, max_steps=7, log_every=3), progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("pretrain: ")]
    assert [int(line.split()[1].split("/")[0]) for line in lines] == logged
    last = metrics(run)[-1]
    assert lines[-1].startswith("pretrain: 7/7 step (100%), ") and f"loss {last['loss']:.4f}, " in lines[-1]


def test_config_yaml_is_portable_and_says_each_setting_once(dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny(dataset, run, max_steps=1), progress=False)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert "resolved" not in saved["extra"] and not set(saved["extra"]) & set(TrainConfig().to_dict())
    assert saved["extra"]["label_vocabulary"] and saved["extra"]["tokenizer_dir"] == "tokenizer"
    assert ".venv" not in (run / "config.yaml").read_text()
    checkpoint_config = json.loads((run / "checkpoints" / "step-00000001" / "config.json").read_text())
    assert checkpoint_config["tokenizer_dir"] == "tokenizer"


def test_resume_skips_a_damaged_newest_checkpoint_with_a_warning(dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny(dataset, run, max_steps=4, save_every=2), progress=False)
    (run / "checkpoints" / "step-00000004" / "training_state.pt").write_bytes(b"")
    said = []
    summary = train(tiny(dataset, run, max_steps=5), resume=True, progress=False, echo=said.append)
    assert summary.start_step == 2
    assert any(
        "step-00000004: training_state.pt does not match its checksum" in line and "step-00000002" in line
        for line in said
    )


def test_the_corrupt_image_cap_is_a_binomial_test():
    assert not corrupt_beyond_cap(1, 9, 0.01)  # one bad image in the first batch: could be bad luck
    assert corrupt_beyond_cap(5, 16, 0.01)  # a third of the split: surely above 1%
    assert not corrupt_beyond_cap(15, 1000, 0.01) and corrupt_beyond_cap(30, 1000, 0.01)
    assert corrupt_beyond_cap(1, 1000, 0.0) and not corrupt_beyond_cap(0, 1000, 0.0)
    assert not corrupt_beyond_cap(999, 1000, 1.0)


def test_too_many_corrupt_images_stop_the_run_with_one_line(tmp_path, datasets):
    broken = datasets.write_learnable(tmp_path / "ds", rows=48, corrupt_rows=tuple(range(0, 48, 3)))
    with pytest.raises(
        TrainError, match="of the .* images read so far do not decode, more than --max-corrupt-fraction 0.01"
    ):
        train(tiny(broken, tmp_path / "a", max_steps=20), progress=False)
    summary = train(tiny(broken, tmp_path / "b", max_steps=2, max_corrupt_fraction=0.5), progress=False)
    assert summary.corrupt_images > 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [0, 1])
def test_a_split_without_one_decodable_image_stops_instead_of_hanging(tmp_path, workers, datasets):
    broken = datasets.write_learnable(tmp_path / "ds", rows=16, corrupt_rows=tuple(range(16)))
    with pytest.raises(TrainError, match="^none of the 12 train images of one loader slot's share decodes; check"):
        train(tiny(broken, tmp_path / "run", workers=workers), progress=False)


def test_gradient_accumulation_and_clip_loss(dataset, tmp_path):
    summary = train(tiny(dataset, tmp_path / "r", max_steps=2, grad_accum=2, loss="clip"), progress=False)
    assert summary.samples == 2 * 2 * 8
    assert set(metrics(tmp_path / "r")[0]) >= {"loss", "clip"}


def test_bad_runs_fail_with_one_line(dataset, tmp_path):
    with pytest.raises(TrainError, match="no rows in split 'test'"):
        train(tiny(dataset, tmp_path / "a", split="test"), progress=False)
    with pytest.raises(TrainError, match="no text column"):
        train(tiny(dataset, tmp_path / "b", granularities=["series"]), progress=False)
    train(tiny(dataset, tmp_path / "c", max_steps=1), progress=False)
    with pytest.raises(TrainError, match="already holds a run"):
        train(tiny(dataset, tmp_path / "c", max_steps=1), progress=False)


@pytest.mark.slow
def test_two_process_ddp_on_gloo_through_torchrun(dataset, tmp_path):
    """The real multi-GPU entry point (torchrun + the mgll script), on CPU with the gloo backend; then the
    run resumes in a single process (a changed world size) and carries on from the two-rank checkpoint."""
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = Path(sys.executable).parent / "mgll"
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
        "--master-port", str(port), str(script), "pretrain", str(dataset), "--out", str(out), "--model", "tiny",
        "--text-model", "tiny", "--image-size", "32", "--batch-size", "4", "--embed-dim", "16", "--max-steps", "3",
        "--log-every", "1", "--quiet", "--json", "-",
    ]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [json.loads(done.stdout)]  # the main rank's alone: stdout holds nothing else
    assert len(summaries) == 1 and summaries[0]["world_size"] == 2 and summaries[0]["samples"] == 3 * 4 * 2
    assert [r["step"] for r in metrics(out)] == [1, 2, 3]
    assert (out / "checkpoints" / "step-00000003" / "model.safetensors").is_file()

    two_rank_weights = load_file(out / "checkpoints" / "step-00000003" / "model.safetensors")
    resumed = train(tiny(dataset, out, max_steps=5, batch_size=4, embed_dim=16), resume=True, progress=False)
    assert (resumed.start_step, resumed.steps, resumed.world_size) == (3, 5, 1)
    assert [r["step"] for r in metrics(out)] == [1, 2, 3, 4, 5]
    one_rank_weights = load_file(out / "checkpoints" / "step-00000005" / "model.safetensors")
    assert two_rank_weights.keys() == one_rank_weights.keys()
    assert any(not torch.equal(two_rank_weights[k], one_rank_weights[k]) for k in two_rank_weights)


def test_the_logit_bias_starts_at_the_first_batch_prior_and_trains(dataset, tmp_path, monkeypatch):
    from mgll_train import trainer as trainer_module
    from mgll_train.loss import label_levels, logit_bias_prior
    from mgll_train.step import step_items

    seen = {}
    real = trainer_module._start_logit_bias

    def spy(model, batches, granularities, split, device, *rest):
        out = real(model, batches, granularities, split, device, *rest)
        seen["start"] = model.logit_bias.detach().clone()
        first = next(out)
        seen["prior"] = logit_bias_prior(
            step_items(first), first["text_ids"], first["text_mask"], label_levels(granularities)
        )
        return itertools.chain([first], out)

    monkeypatch.setattr(trainer_module, "_start_logit_bias", spy)
    run = tmp_path / "run"
    train(tiny(dataset, run, max_steps=4), progress=False)
    weights = load_file(run / "checkpoints" / "step-00000004" / "model.safetensors")
    assert weights["logit_bias"].shape == (4,)  # one per granularity: category, disease, description, explanation
    # the start is the log-odds of the first batch's share of positive pairs, per granularity
    torch.testing.assert_close(seen["start"], seen["prior"])
    assert torch.isfinite(seen["start"]).all() and len(set(seen["start"].tolist())) > 1
    assert not torch.allclose(weights["logit_bias"], seen["start"])  # it is learnt, not fixed
    clip_run = tmp_path / "clip"
    train(tiny(dataset, clip_run, max_steps=2, loss="clip"), progress=False)
    assert "logit_bias" not in load_file(clip_run / "checkpoints" / "step-00000002" / "model.safetensors")


def test_freeze_text_keeps_the_text_tower_and_text_lr_scale_slows_it(dataset, tmp_path):
    from mgll_train.model import build_model
    from mgll_train.trainer import _seed_everything

    _seed_everything(1)  # train() seeds the same way before building, so this is the run's start
    start = build_model("tiny", "tiny", 32, image_size=32, text_levels=4)[0].state_dict()

    def moved(name, **overrides):
        run = tmp_path / name
        train(tiny(dataset, run, max_steps=3, seed=1, **overrides), progress=False)
        end = load_file(run / "checkpoints" / "step-00000003" / "model.safetensors")
        text = sum(float((end[k] - start[k]).abs().sum()) for k in end if k.startswith("text."))
        return text, float((end["text_proj.weight"] - start["text_proj.weight"]).abs().sum())

    frozen, moving, slow = moved("frozen", freeze_text=True), moved("moving"), moved("slow", text_lr_scale=0.01)
    assert frozen[0] == 0 and frozen[1] > 0  # the tower stays, its projection trains
    assert moving[0] > 0 and 0 < slow[0] < 0.1 * moving[0]  # AdamW steps scale with the group's rate


def test_a_dataset_with_items_trains_on_each_levels_items(tmp_path, monkeypatch, datasets):
    """Schema 1.3: the batch's per-level items, not the labels, reach the loss (and its bias prior)."""
    from mgll_train import step as step_module

    seen = []
    real = step_module.step_items

    def spy(batch):
        items = real(batch)
        seen.append(tuple(items.shape))
        return items

    monkeypatch.setattr(step_module, "step_items", spy)
    root = datasets.write_learnable(tmp_path / "ds", rows=32, items=True)
    summary = train(tiny(root, tmp_path / "run", max_steps=3), progress=False)
    assert summary.last_loss is not None and seen
    assert set(seen) == {(4, 8, len(datasets.ITEM_VOCABULARY))}  # K granularities x batch x item vocabulary
