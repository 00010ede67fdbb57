import os

import pytest

# Tests never reach the network: `datasets` / `huggingface_hub` read these when first imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture()
def one_torch_thread():
    """Two cores shared by many jobs: one torch thread is several times faster than oversubscribed two."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
