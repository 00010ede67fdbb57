"""The training step under torch.compile, on CPU: one graph without breaks, the same loss as eager.

The compile tests use the `aot_eager` backend: it runs dynamo's capture and AOTAutograd's forward and
backward graphs exactly as `--compile` does, without the minutes inductor's C++ code generation takes
on a 2-core machine (bench/bench_gpu.py measures inductor itself: warm-up and step time).
"""

from functools import partial

import pytest
import torch

from mgll_train.config import TrainConfig
from mgll_train.data import open_dataset
from mgll_train.loss import MGLLLoss
from mgll_train.model import build_model, default_text_folder, load_tokenizer
from mgll_train.step import STEP_KEYS, TrainStep
from mgll_train.stream import Collator, ParquetImageText, TextTokens
from mgll_train.trainer import train

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]  # torch.compile: ~20 s
GRANULARITIES = ["category", "disease", "description", "explanation"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, datasets):
    return datasets.write_learnable(tmp_path_factory.mktemp("ds"), rows=32)


@pytest.fixture(scope="module")
def batch(dataset):
    """A real collated batch: repeated texts, a missing granularity, uint8 grey pixels."""
    tokens = TextTokens(partial(load_tokenizer, default_text_folder()), 32)
    stream = ParquetImageText(open_dataset(dataset), GRANULARITIES, image_size=32, tokens=tokens, epochs=1)
    collated = Collator(tokens.pad_id)(list(stream)[:8])
    assert not collated["text_mask"].all()
    return {key: collated[key] for key in STEP_KEYS}


def _step(kind="mgll"):
    torch.manual_seed(0)
    model, cfg = build_model("tiny", "tiny", 32, image_size=32)
    model.eval()  # dropout off, so eager and compiled runs see the same network
    return TrainStep(model, MGLLLoss(kind=kind, gather=False), cfg["mean"], cfg["std"])


def test_the_step_is_one_graph_without_breaks(batch):
    explained = torch._dynamo.explain(_step())(batch)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


@pytest.mark.parametrize("kind", ["mgll", "clip"])
def test_the_compiled_step_gives_the_eager_loss_and_gradients(batch, kind):
    step = _step(kind)
    eager = step(batch)
    eager["loss"].backward()
    expected = {name: p.grad.clone() for name, p in step.named_parameters()}
    step.zero_grad()
    torch._dynamo.reset()
    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)(batch)
    compiled["loss"].backward()
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-5, atol=1e-6)
    for name, p in step.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-4, atol=1e-6)


def test_pretrain_with_compile_trains_like_eager(dataset, tmp_path, monkeypatch):
    real_compile = torch.compile
    compiled = []

    def aot_eager(module, **kwargs):
        compiled.append(type(module).__name__)
        return real_compile(module, backend="aot_eager", fullgraph=True)

    monkeypatch.setattr(torch, "compile", aot_eager)
    settings = dict(dataset=str(dataset), model="tiny", text_model="tiny", image_size=32, batch_size=8,
                    embed_dim=32, max_steps=3, log_every=1, shuffle_buffer=8)  # fmt: skip
    torch._dynamo.reset()
    with_compile = train(TrainConfig(out=str(tmp_path / "c"), compile=True, **settings), progress=False)
    eager = train(TrainConfig(out=str(tmp_path / "e"), **settings), progress=False)
    assert compiled == ["TrainStep"]
    assert with_compile.losses == pytest.approx(eager.losses, rel=1e-4)
