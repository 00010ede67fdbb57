"""The `mgll` command group.

Commands live one per module in `mgll_data/commands/` and are named here by module path, imported only
when invoked, so `mgll build` never pays for importing torch and `mgll --help` stays instant. The CLI is
the one joint of the toolkit: `pretrain` and `evaluate` (and `demo run`) are the only modules of mgll_data
that import mgll_train.
"""

from __future__ import annotations

import importlib

import click

from mgll_data import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("mgll_data.commands.build:build", "Build a de-identified multi-granular Parquet dataset from an export."),
    "validate": ("mgll_data.commands.validate:validate", "Check a built dataset against the contract."),
    "card": ("mgll_data.commands.card:card", "Write a dataset card (markdown + charts)."),
    "label": ("mgll_data.commands.label:label", "Label free-text reports (positive / negative / uncertain)."),
    "demo": ("mgll_data.commands.demo:demo", "Write the embedded sample export, or run the whole demo."),
    "pretrain": ("mgll_data.commands.pretrain:pretrain", "Pretrain a vision encoder with MGLL (or CLIP)."),
    "evaluate": ("mgll_data.commands.evaluate:evaluate", "Evaluate a pretraining run downstream."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[name][0].split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            missing = (exc.name or str(exc)).split(".")[0]
            if missing in ("mgll_data", "mgll_train"):
                raise
            raise click.ClickException(
                f"'mgll {name}' needs a package that is not installed ({missing}); run `make install`"
            ) from None
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mgll")
def main() -> None:
    """mgll: build multi-granular medical vision-language datasets and pretrain MGLL models on them.

    \b
    Example:
      mgll demo export sample-export
      mgll build sample-export mgll-cxr --pipeline mimic-cxr --workers 2
      mgll validate mgll-cxr
    """
