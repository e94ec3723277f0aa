import os

import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")


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
