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

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from mgll_train.evaluate import metrics
from mgll_train.evaluate.downstream import Downstream, EvaluationError
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
    aucs = [metrics.roc_auc(y[:, j] == 1, probabilities[:, j]) for j in range(y.shape[1]) if y[:, j].min() < 1 and (y[:, j] == 1).any()]
    aucs = [a for a in aucs if np.isfinite(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def evaluate(
    run: Run,
    data: Downstream,
    rows: dict[str, np.ndarray],
    *,
    head: str = "auto",
    epochs: int = 3,
    batch_size: int = 16,
    lr: float = 1e-4,
    weight_decay: float = 0.01,
    workers: int = 2,
    bootstrap: int = metrics.DEFAULT_BOOTSTRAP,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    head = data.kind if head == "auto" else head
    if head not in ("multilabel", "multiclass"):
        raise EvaluationError(f"--head must be auto, multilabel or multiclass, got {head!r}")
    if head == "multiclass" and data.kind != "multiclass":
        raise EvaluationError("--head multiclass needs downstream data with one class column (a CSV); this data is multi-label")
    if len(rows["train"]) == 0:
        raise EvaluationError("finetune needs a train split, and the downstream data has none")
    multiclass = head == "multiclass"
    labels = data.labels if multiclass else data.multilabel_matrix()
    torch.manual_seed(seed)

    raw = {s: [b for _, b in data.image_bytes(rows[s])] for s in ("train", "val", "test")}
    y = {s: labels[rows[s]] for s in ("train", "val", "test")}
    classifier = Classifier(run.model, len(data.label_names)).to(run.device)
    groups = classifier.trainable()
    optimizer = torch.optim.AdamW(
        [{"params": g["params"], "lr": lr * g["lr_scale"]} for g in groups], weight_decay=weight_decay
    )
    steps_per_epoch = math.ceil(len(raw["train"]) / batch_size)
    total = max(1, steps_per_epoch * epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    rng = np.random.default_rng(seed)
    history, best = [], None
    bar = tqdm(total=total, desc="finetune", unit="step", disable=not progress, leave=False)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for epoch in range(epochs):
            classifier.train()
            order = rng.permutation(len(raw["train"]))
            losses = []
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                seeds = [int(s) for s in rng.integers(0, 2**31, len(batch))]
                pixels = _decode_all(run, [raw["train"][i] for i in batch], True, seeds, pool).to(run.device)
                target = torch.as_tensor(y["train"][batch], device=run.device)
                with _autocast(run.device):
                    logits = classifier(pixels).float()
                if multiclass:
                    loss = nn.functional.cross_entropy(logits, target.long())
                else:
                    known = (target != -1).float()
                    per = nn.functional.binary_cross_entropy_with_logits(logits, (target == 1).float(), reduction="none")
                    loss = (per * known).sum() / known.sum().clamp(min=1.0)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.3f}")
            val_prob = _predict(classifier, run, raw["val"], batch_size, pool, multiclass)
            score = _selection_score(multiclass, y["val"], val_prob)
            history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_score": None if np.isnan(score) else score})
            if best is None or (np.isfinite(score) and not (np.isfinite(best[0]) and score < best[0])):
                best = (score, epoch + 1, classifier.trained_state())
        bar.close()
        classifier.load_state_dict(best[2], strict=False)
        val_prob = _predict(classifier, run, raw["val"], batch_size, pool, multiclass)
        test_prob = _predict(classifier, run, raw["test"], batch_size, pool, multiclass)

    if multiclass:
        result = metrics.multiclass_report(data.label_names, y["test"], test_prob, bootstrap, seed)
    else:
        thresholds = []
        for j in range(len(data.label_names)):
            known = y["val"][:, j] != -1
            t = metrics.best_f1_threshold(y["val"][known, j] == 1, val_prob[known, j])
            thresholds.append(0.5 if t is None else t)
        result = metrics.multilabel_report(
            data.label_names, y["test"] == 1, test_prob, y["test"] != -1, thresholds, bootstrap, seed
        )
    result.update(
        head=head,
        epochs=epochs,
        best_epoch=best[1],
        selection="val accuracy" if multiclass else "val macro AUC",
        history=history,
        train_images=len(raw["train"]),
        val_images=len(raw["val"]),
    )
    result["_curves"] = {"y": data.multilabel_matrix()[rows["test"]], "scores": test_prob, "names": data.label_names}
    return result
