"""`mgll pretrain`: a thin click layer over `mgll_train.trainer.train`."""

from __future__ import annotations

from pathlib import Path

import click

from mgll_data.commands.options import human_echo, json_option, quiet_option, write_json
from mgll_train.config import ConfigError, TrainConfig, parse_granularities

# Flags default to None (a --config file's value stands); the help names TrainConfig's defaults.
_DEFAULTS = TrainConfig()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("dataset", type=click.Path(path_type=Path), required=False)
@click.option(
    "--out", "out", type=click.Path(path_type=Path), required=True, help="Run folder (checkpoints, metrics, config)."
)
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="YAML config; flags given here override it."
)
@click.option("--model", help="Vision tower: tiny, vit-b16, convnext-tiny, resnet50, or a local pretrained folder.")
@click.option(
    "--text-model", help="Text tower: minilm (default, the packaged MiniLM), tiny (small, random) or a local folder."
)
@click.option("--loss", type=click.Choice(["mgll", "clip"]), help="MGLL (default) or the plain CLIP baseline.")
@click.option(
    "--granularities",
    help="Comma list, e.g. disease,description,explanation (default: the dataset's minus modality/study/series).",
)
@click.option("--split", help=f"Split to train on (default {_DEFAULTS.split}).")
@click.option("--max-steps", type=int, help="Optimizer steps to train to (counted from 0, also on --resume).")
@click.option("--epochs", type=int, help="Passes over the split, when --max-steps is not given (default 1).")
@click.option("--batch-size", type=int, help=f"Images per device per micro-step (default {_DEFAULTS.batch_size}).")
@click.option("--grad-accum", type=int, help=f"Micro-steps per optimizer step (default {_DEFAULTS.grad_accum}).")
@click.option("--lr", type=float, help=f"Peak learning rate (default {_DEFAULTS.lr:g}).")
@click.option("--text-lr-scale", type=float,
              help="Text tower learning rate as a share of --lr (default 0.1 for a pretrained tower, 1 for 'tiny').")
@click.option(
    "--freeze-text", is_flag=True, default=None, help="Keep the text tower's weights fixed (its projection trains)."
)
@click.option("--embed-dim", type=int, help=f"Shared embedding size (default {_DEFAULTS.embed_dim}).")
@click.option("--image-size", type=int, help=f"Square input size in pixels (default {_DEFAULTS.image_size}).")
@click.option("--workers", type=int,
              help=f"Data-loader worker processes (default {_DEFAULTS.workers}: load in the training process).")
@click.option("--image-column", type=click.Choice(["auto", "image", "image_train"]),
              help="Images to train on: auto (default) takes the JPEG training copy when the dataset has one.")
@click.option("--max-corrupt-fraction", type=float,
              help=f"Stop when clearly more than this share of the images read does not decode "
                   f"(default {_DEFAULTS.max_corrupt_fraction}).")
@click.option("--seed", type=int, help=f"Seed for weights, data order and augmentation (default {_DEFAULTS.seed}).")
@click.option("--device", help="auto (default), cpu, cuda or cuda:N.")
@click.option(
    "--precision", type=click.Choice(["auto", "bf16", "fp32"]), help="auto: bf16 autocast on CUDA, fp32 on CPU."
)
@click.option("--save-every", type=int,
              help=f"Checkpoint every N steps (default {_DEFAULTS.save_every}; always at the end).")
@click.option("--log-every", type=int, help=f"Write metrics every N steps (default {_DEFAULTS.log_every}).")
@click.option("--grad-checkpointing", is_flag=True, default=None, help="Recompute activations to save GPU memory.")
@click.option("--compile", "compile_model", is_flag=True, default=None,
              help="torch.compile the whole step (augmentation, towers, loss); pays a warm-up of minutes on CPU.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its newest intact checkpoint.")
@json_option("the end summary")
@quiet_option
def pretrain(dataset, out, config_file, resume, quiet, json_out, compile_model, **flags) -> None:
    """Pretrain a vision encoder on a built mgll DATASET with MGLL (or CLIP) into the run folder --out.

    \b
    Examples:
      mgll pretrain mgll-cxr --out runs/tiny --model tiny --image-size 64 --batch-size 16 --max-steps 40
      mgll pretrain mgll-cxr --out runs/tiny --resume --max-steps 60
      mgll pretrain mgll-cxr --out runs/vit --config train.yaml --model vit-b16 --loss clip
      torchrun --nproc-per-node 4 $(which mgll) pretrain mgll-cxr --out runs/vit --model vit-b16

    DATASET may be left out with --resume (the run remembers it). Metrics go to RUN/metrics.jsonl and
    RUN/tensorboard; checkpoints (safetensors) to RUN/checkpoints/step-N.
    """
    from mgll_train.checkpoint import CheckpointError
    from mgll_train.config import resolve
    from mgll_train.data import DatasetError
    from mgll_train.model import ModelError
    from mgll_train.run_lock import RunFolderError
    from mgll_train.trainer import TrainError, train

    overrides = {k: v for k, v in flags.items() if v is not None}
    overrides["out"] = str(out)
    if dataset is not None:
        overrides["dataset"] = str(dataset)
    if compile_model is not None:
        overrides["compile"] = compile_model
    try:
        if "granularities" in overrides:
            overrides["granularities"] = parse_granularities(overrides["granularities"])
        config = resolve(config_file, overrides, resume)
        if not config.dataset:
            raise click.ClickException("give the DATASET folder to train on")
        summary = train(config, resume=resume, progress=not quiet)
    except (ConfigError, DatasetError, ModelError, CheckpointError, TrainError, RunFolderError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        raise click.ClickException(f"interrupted; continue with: mgll pretrain --out {out} --resume") from None
    if summary.world_size > 1 and not _is_main():
        return
    human_echo(json_out)("\n".join(summary.summary_lines()))
    write_json(summary.to_dict(), json_out)


def _is_main() -> bool:
    from mgll_train import distributed

    return distributed.is_main_process()
