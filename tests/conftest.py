"""Shared fixtures.  MNIST is read from $MNIST_DATA_DIR (CI: ../shared/data), else ./data."""
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import utils  # noqa: E402


@pytest.fixture(scope="session")
def mnist():
    """(train images, train labels, test images, test labels) as uint8 / int64 tensors."""
    train = utils.load_mnist(train=True)
    test = utils.load_mnist(train=False)
    return (*train, *test)


@pytest.fixture(scope="session")
def small_loaders(mnist):
    """A 1,024-image training loader and the full 10,000-image test loader, on the CPU."""
    train_x, train_y, test_x, test_y = mnist
    train = utils.Loader(train_x[:1024], train_y[:1024], batch_size=128, shuffle=True, seed=0)
    test = utils.Loader(test_x, test_y, batch_size=1000)
    return train, test


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(2)
