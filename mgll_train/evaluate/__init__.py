"""Downstream evaluation of pretraining runs: zero-shot, retrieval, linear probe and fine-tuning.

`evaluate(run, dataset, task, out, EvaluationOptions(...))` is the library entry point behind
`mgll evaluate`; every metric comes with a bootstrap 95% interval over patients (`metrics`), and results
land in `out/results.json`, `out/results.md` and PNG charts (`report`).
"""

from mgll_train.evaluate.downstream import EvaluationError
from mgll_train.evaluate.runner import TASKS, EvaluationOptions, evaluate, parse_tasks

__all__ = ["TASKS", "EvaluationError", "EvaluationOptions", "evaluate", "parse_tasks"]
