import json

import pytest
from click.testing import CliRunner

from mgll_data.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, datasets):
    return datasets.write_learnable(tmp_path_factory.mktemp("ds"), rows=64, corrupt_rows=(8,))


SMALL = ["--model", "tiny", "--text-model", "tiny", "--image-size", "32", "--batch-size", "8", "--embed-dim", "32",
         "--lr", "2e-3", "--log-every", "1", "--no-progress"]


def run(*args):
    result = CliRunner().invoke(main, ["pretrain", *map(str, args)])
    assert "Traceback" not in result.output
    return result


def test_help_shows_an_example():
    result = run("--help")
    assert result.exit_code == 0 and "mgll pretrain mgll-cxr --out" in result.output and "--resume" in result.output


def test_pretrain_40_steps_then_resume_to_60(dataset, tmp_path):
    out = tmp_path / "run"
    first = run(dataset, "--out", out, *SMALL, "--max-steps", "40", "--save-every", "20")
    assert first.exit_code == 0, first.output
    assert "trained steps 0->40" in first.output and "skipped 1 corrupt images" in first.output
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 40 and sum(losses[-10:]) / 10 < sum(losses[:10]) / 10
    assert (out / "checkpoints" / "step-00000040" / "model.safetensors").is_file()

    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert f"-> {last['loss']:.4f} (step 40)" in first.output

    resumed = run("--out", out, "--resume", "--max-steps", "60", "--no-progress")
    assert resumed.exit_code == 0, resumed.output
    assert "trained steps 40->60" in resumed.output and "a warm restart" in resumed.output
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 61))
    assert (out / "latest").read_text().strip() == "step-00000060"


def test_minilm_text_tower_by_name_and_json_summary(dataset, tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("batch_size: 4\nimage_size: 32\nmax_steps: 2\nembed_dim: 16\n")
    args = ["--config", config, "--model", "tiny", "--text-model", "minilm", "--max-steps", "1", "--json",
            "--no-progress"]
    result = run(dataset, "--out", tmp_path / "run", *args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["steps"] == 1 and summary["samples"] == 4
    assert summary["parameters"] > 20_000_000


@pytest.mark.parametrize("damage", ["truncated weights", "empty training state"])
def test_a_damaged_checkpoint_on_resume_is_one_line_or_falls_back(dataset, tmp_path, damage):
    out = tmp_path / "run"
    assert run(dataset, "--out", out, *SMALL, "--max-steps", "4", "--save-every", "2").exit_code == 0
    newest = out / "checkpoints" / "step-00000004"
    target = newest / ("model.safetensors" if damage == "truncated weights" else "training_state.pt")
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2] if damage == "truncated weights" else b"")

    fallback = run("--out", out, "--resume", "--max-steps", "6", "--no-progress")
    assert fallback.exit_code == 0, fallback.output
    assert "trained steps 2->6" in fallback.output and f"step-00000004: {target.name} does not match" in fallback.output

    for checkpoint in (out / "checkpoints").glob("step-*"):
        (checkpoint / target.name).write_bytes(b"")
    failed = run("--out", out, "--resume", "--max-steps", "8", "--no-progress")
    assert failed.exit_code == 1 and "Aborted" not in failed.output
    assert [line for line in failed.output.splitlines() if line.startswith("Error:")] == [
        f"Error: checkpoint step-00000006: {target.name} does not match its checksum (damaged or truncated), "
        "and no older checkpoint is intact"
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["{missing}", "--out", "{out}"], "dataset folder not found"),
        (["{empty}", "--out", "{out}"], "no data shards"),
        (
            ["{dataset}", "--out", "{out}", "--granularities", "disease,series"],
            "no text column for granularities ['series']",
        ),
        (["{dataset}", "--out", "{out}", "--split", "test"], "no rows in split 'test'"),
        (["{dataset}", "--out", "{out}", "--model", "vit-huge"], "neither a name"),
        (["--out", "{out}", "--resume"], "nothing to resume"),
        (["{dataset}", "--out", "{out}", "--config", "{missing}"], "config file not found"),
        (["{dataset}", "--out", "{out}", "--batch-size", "0"], "batch-size must be at least 1"),
        (
            ["{dataset}", "--out", "{out}", "--max-corrupt-fraction", "2"],
            "max-corrupt-fraction must be between 0 and 1",
        ),
    ],
)
def test_bad_input_is_one_line(dataset, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "dataset": dataset, "out": tmp_path / "run"}
    towers = ["--text-model", "tiny"] + ([] if "--model" in args else ["--model", "tiny"])
    result = run(*[a.format(**paths) for a in args], *towers)
    assert result.exit_code == 1
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and message in error_lines[0], result.output


def test_config_file_then_flags(tmp_path):
    from mgll_train.config import ConfigError, make_config

    path = tmp_path / "train.yaml"
    path.write_text("batch-size: 4\nlr: 0.001\ngranularities: disease,description\n")
    config = make_config(path, {"lr": 0.01, "dataset": "d", "out": "o"})
    assert (config.batch_size, config.lr, config.granularities) == (4, 0.01, ["disease", "description"])
    path.write_text("batch_sise: 4\n")
    with pytest.raises(ConfigError, match="unknown config keys \\['batch_sise'\\]"):
        make_config(path, {})
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        make_config(path, {})


def test_resume_keeps_the_saved_config_and_refuses_model_changes(tmp_path):
    from mgll_train.config import ConfigError, TrainConfig, resolve, save_config

    save_config(
        TrainConfig(dataset="ds", out=str(tmp_path), model="tiny", batch_size=4, max_steps=10),
        {"resolved": {}},
        tmp_path / "config.yaml",
    )
    config = resolve(None, {"out": str(tmp_path), "max_steps": 20}, resume=True)
    assert (config.dataset, config.model, config.batch_size, config.max_steps) == ("ds", "tiny", 4, 20)
    with pytest.raises(ConfigError, match="--resume cannot change model"):
        resolve(None, {"out": str(tmp_path), "model": "vit-b16"}, resume=True)
