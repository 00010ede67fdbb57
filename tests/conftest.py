import pytest


@pytest.fixture()
def one_torch_thread():
    """Two cores shared by many jobs: one torch thread is several times faster than oversubscribed two."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
