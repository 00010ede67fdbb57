"""Fine-tuning: the whole vision tower plus a linear head on the downstream labels.

The head sits on the pooled, unprojected backbone feature (`MGLLModel.image_features`), as in the MGLL
paper's transfer experiments. Multi-label: BCE with uncertain (-1) entries masked out of the loss.
Multi-class (`--head multiclass`, a CSV with one class column): cross-entropy. The epoch with the best
validation macro AUC (multi-class: accuracy) is kept; thresholds are chosen on validation by F1 as in the
linear probe, and the test split is scored once at the end.

The run's own model is never modified (the tower is copied). Encoded image bytes of the splits are held
in memory; fine-tuning is meant for downstream sets of thousands of images, not millions.
"""

from __future__ import annotations

import copy
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from mgll_train.evaluate import metrics
from mgll_train.evaluate.downstream import SPLITS, Downstream, EvaluationError
from mgll_train.evaluate.features import Run


class Classifier(nn.Module):
    """A copy of the run's model whose pooled vision features feed one linear layer.

    Only the vision tower and the head train; the copied text tower and projections are frozen and
    unused, and the run's own model is left untouched.
    """

    def __init__(self, model: nn.Module, outputs: int) -> None:
        super().__init__()
        if not (hasattr(model, "image_features") and hasattr(model, "vision")):
            raise EvaluationError("finetune needs an MGLLModel (with a vision tower and image_features())")
        self.backbone = copy.deepcopy(model)
        for name, param in self.backbone.named_parameters():
            param.requires_grad_(name.startswith("vision."))
        self.head = nn.Linear(int(self.backbone.vision_proj.in_features), outputs)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.image_features(pixels).float())

    def trained_state(self) -> dict[str, torch.Tensor]:
        """A copy of the weights that change (vision tower + head), to restore the best epoch."""
        return {
            k: v.detach().clone()
            for k, v in self.state_dict().items()
            if k.startswith(("backbone.vision.", "head."))
        }

    def trainable(self) -> list[dict]:
        """The tower at the base rate, the freshly initialised head ten times faster."""
        tower = [p for p in self.backbone.parameters() if p.requires_grad]
        return [{"params": tower, "lr_scale": 1.0}, {"params": list(self.head.parameters()), "lr_scale": 10.0}]


def _decode_all(run: Run, raw: list[bytes], train: bool, seeds: list[int], pool: ThreadPoolExecutor) -> torch.Tensor:
    from mgll_train.transform import CorruptImage, decode_image

    norm = run.normalisation

    def one(args: tuple[bytes, int]) -> torch.Tensor:
        data, seed = args
        try:
            return decode_image(data, run.image_size, train, rng=np.random.default_rng(seed) if train else None, **norm)
        except CorruptImage as exc:
            raise EvaluationError(f"a downstream image cannot be decoded ({exc})") from None

    return torch.stack(list(pool.map(one, zip(raw, seeds))))


@torch.no_grad()
def _predict(classifier: Classifier, run: Run, raw: list[bytes], batch_size: int, pool, multiclass: bool) -> np.ndarray:
    classifier.eval()
    outs = []
    for start in range(0, len(raw), batch_size):
        pixels = _decode_all(run, raw[start : start + batch_size], False, [0] * batch_size, pool).to(run.device)
        with _autocast(run.device):
            logits = classifier(pixels).float()
        outs.append((logits.softmax(-1) if multiclass else logits.sigmoid()).cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, classifier.head.out_features))


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def _selection_score(multiclass: bool, y: np.ndarray, probabilities: np.ndarray) -> float:
    if len(y) == 0:
        return float("nan")
    if multiclass:
        return float((probabilities.argmax(1) == y).mean())
    aucs = [
        metrics.roc_auc(y[:, j] == 1, probabilities[:, j])
        for j in range(y.shape[1])
        if y[:, j].min() < 1 and (y[:, j] == 1).any()
    ]
    aucs = [a for a in aucs if np.isfinite(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


@dataclass(frozen=True)
class FinetuneSettings:
    head: str = "auto"  # auto (from the data), multilabel or multiclass
    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-4  # the vision tower's rate; the new head trains at 10x
    weight_decay: float = 0.01
    workers: int = 2  # decoding threads
    progress: bool = True


@dataclass
class _Split:
    """One split's encoded images and targets, held in memory for the epochs."""

    raw: list[bytes]
    y: np.ndarray


def _resolve_head(data: Downstream, rows: dict[str, np.ndarray], head: str) -> bool:
    """True for a multi-class head; refuses combinations that cannot train."""
    head = data.kind if head == "auto" else head
    if head not in ("multilabel", "multiclass"):
        raise EvaluationError(f"--head must be auto, multilabel or multiclass, got {head!r}")
    if head == "multiclass" and data.kind != "multiclass":
        raise EvaluationError(
            "--head multiclass needs downstream data with one class column (a CSV); this data is multi-label"
        )
    if len(rows["train"]) == 0:
        raise EvaluationError("finetune needs a train split, and the downstream data has none")
    return head == "multiclass"


def _batch_loss(logits: torch.Tensor, target: torch.Tensor, multiclass: bool) -> torch.Tensor:
    """Cross-entropy over classes, or BCE with uncertain (-1) entries masked out."""
    if multiclass:
        return nn.functional.cross_entropy(logits, target.long())
    known = (target != -1).float()
    per = nn.functional.binary_cross_entropy_with_logits(logits, (target == 1).float(), reduction="none")
    return (per * known).sum() / known.sum().clamp(min=1.0)


class _Trainer:
    """The fine-tuning loop: AdamW + cosine over all steps, best validation epoch kept."""

    def __init__(self, classifier: Classifier, run: Run, settings: FinetuneSettings, steps: int, seed: int) -> None:
        self.classifier, self.run, self.settings = classifier, run, settings
        self.groups = classifier.trainable()
        self.optimizer = torch.optim.AdamW(
            [{"params": g["params"], "lr": settings.lr * g["lr_scale"]} for g in self.groups],
            weight_decay=settings.weight_decay,
        )
        total = max(1, steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        )
        self.rng = np.random.default_rng(seed)
        self.bar = tqdm(total=total, desc="finetune", unit="step", disable=not settings.progress, leave=False)

    def epoch(self, train: _Split, multiclass: bool, pool: ThreadPoolExecutor) -> float:
        """One pass over the train split in a fresh order; the mean batch loss."""
        self.classifier.train()
        order = self.rng.permutation(len(train.raw))
        losses = []
        for start in range(0, len(order), self.settings.batch_size):
            batch = order[start : start + self.settings.batch_size]
            seeds = [int(s) for s in self.rng.integers(0, 2**31, len(batch))]
            pixels = _decode_all(self.run, [train.raw[i] for i in batch], True, seeds, pool).to(self.run.device)
            target = torch.as_tensor(train.y[batch], device=self.run.device)
            with _autocast(self.run.device):
                logits = self.classifier(pixels).float()
            loss = _batch_loss(logits, target, multiclass)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in self.groups for p in g["params"]], 1.0)
            self.optimizer.step()
            self.scheduler.step()
            losses.append(loss.item())
            self.bar.update(1)
        return float(np.mean(losses))

    def fit(self, splits: dict[str, _Split], multiclass: bool, pool: ThreadPoolExecutor) -> tuple[int, list[dict]]:
        """Train every epoch, keep the weights of the best validation epoch; (best epoch, history)."""
        history, best = [], None
        for epoch in range(self.settings.epochs):
            train_loss = self.epoch(splits["train"], multiclass, pool)
            val_prob = _predict(
                self.classifier, self.run, splits["val"].raw, self.settings.batch_size, pool, multiclass
            )
            score = _selection_score(multiclass, splits["val"].y, val_prob)
            history.append(
                {"epoch": epoch + 1, "train_loss": train_loss, "val_score": None if np.isnan(score) else score}
            )
            if best is None or (np.isfinite(score) and not (np.isfinite(best[0]) and score < best[0])):
                best = (score, epoch + 1, self.classifier.trained_state())
        self.bar.close()
        self.classifier.load_state_dict(best[2], strict=False)
        return best[1], history


def _report(
    data: Downstream, rows, splits: dict[str, _Split], val_prob, test_prob, multiclass, bootstrap, seed
) -> dict:
    groups = data.groups(rows["test"])
    y_test = splits["test"].y
    if multiclass:
        return metrics.multiclass_report(data.label_names, y_test, test_prob, bootstrap, seed, groups)
    thresholds = []
    for j in range(len(data.label_names)):
        known = splits["val"].y[:, j] != -1
        t = metrics.best_f1_threshold(splits["val"].y[known, j] == 1, val_prob[known, j])
        thresholds.append(0.5 if t is None else t)
    return metrics.multilabel_report(
        data.label_names, y_test == 1, test_prob, y_test != -1, thresholds, bootstrap, seed, groups
    )


def evaluate(
    run: Run,
    data: Downstream,
    rows: dict[str, np.ndarray],
    settings: FinetuneSettings = FinetuneSettings(),
    *,
    bootstrap: int = metrics.DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> dict:
    multiclass = _resolve_head(data, rows, settings.head)
    labels = data.labels if multiclass else data.multilabel_matrix()
    torch.manual_seed(seed)
    splits = {s: _Split([b for _, b in data.image_bytes(rows[s])], labels[rows[s]]) for s in SPLITS}
    classifier = Classifier(run.model, len(data.label_names)).to(run.device)
    steps = math.ceil(len(splits["train"].raw) / settings.batch_size) * settings.epochs
    trainer = _Trainer(classifier, run, settings, steps, seed)
    with ThreadPoolExecutor(max_workers=max(1, settings.workers)) as pool:
        best_epoch, history = trainer.fit(splits, multiclass, pool)
        val_prob = _predict(classifier, run, splits["val"].raw, settings.batch_size, pool, multiclass)
        test_prob = _predict(classifier, run, splits["test"].raw, settings.batch_size, pool, multiclass)
    result = _report(data, rows, splits, val_prob, test_prob, multiclass, bootstrap, seed)
    result.update(
        head="multiclass" if multiclass else "multilabel",
        epochs=settings.epochs,
        best_epoch=best_epoch,
        selection="val accuracy" if multiclass else "val macro AUC",
        history=history,
        train_images=len(splits["train"].raw),
        val_images=len(splits["val"].raw),
    )
    result["_curves"] = {"y": data.multilabel_matrix()[rows["test"]], "scores": test_prob, "names": data.label_names}
    return result
