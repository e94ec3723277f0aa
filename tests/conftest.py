import os

import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """The test models are tiny: one thread is faster, and immune to other jobs on the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture(scope="session")
def digits01():
    """scikit-learn's digits scaled to [0, 1], float32 (n, 64)."""
    from sklearn.datasets import load_digits
    return (load_digits().data / 16.0).astype(np.float32)
