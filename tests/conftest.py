"""Shared fixtures and helpers.  MNIST is read from $MNIST_DATA_DIR (CI: ../shared/data), else ./data."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import records  # noqa: E402
import series  # noqa: E402
import sync_docs  # noqa: E402
import utils  # noqa: E402

# What a copy of the project leaves out: history, runs, caches, data, staging folders
SKIP = shutil.ignore_patterns(".git", "runs", "__pycache__", ".pytest_cache", "data", ".staging-*")


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


@pytest.fixture
def project_copy(tmp_path):
    """make({path: (old, new), ...}): a copy of the project (no history, runs or caches) with each
    edit applied: old replaced by new in the file at path (old must be there)."""
    def make(edits=None):
        copy = tmp_path / "repo"
        shutil.copytree(ROOT, copy, ignore=SKIP)
        for name, (old, new) in (edits or {}).items():
            path = copy / name
            text = path.read_text()
            assert old in text, f"{path.name} no longer holds {old!r}"
            path.write_text(text.replace(old, new))
        return copy
    return make


def run_check(folder):
    """`python run_notebooks.py --check` in folder: (exit code, output)."""
    proc = subprocess.run([sys.executable, "run_notebooks.py", "--check"], cwd=folder, capture_output=True,
                          text=True, timeout=900)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def rec():
    """rec(step): the committed results record of a step."""
    return lambda step: records.load_record(ROOT / "results" / f"step{step}.json")


@pytest.fixture(scope="session")
def seeds():
    return records.read_json(ROOT / "results" / "seeds.json")


@pytest.fixture(scope="session")
def experiment():
    """experiment(name): a committed record of experiments/search (search, confirm, ablation)."""
    return lambda name: records.read_json(ROOT / "experiments" / "search" / f"{name}.json")


def text_of(step, part):
    """A notebook's Target, Result or Analysis, on one line."""
    return " ".join(sync_docs.sections(ROOT / series.NOTEBOOKS[step])[part].split())


def doc(name):
    """A document of the repository, on one line."""
    return " ".join((ROOT / name).read_text().split())


def words(text):
    return len(re.findall(r"[A-Za-z0-9][\w'.,%-]*", text))


def git_history():
    """Whether this checkout has the full history (a shallow clone or a copy has not)."""
    out = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() == "false"


def git(*args, check=True):
    """git's output in this checkout ('' on failure when check is False: then it is the error)."""
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    if check:
        assert out.returncode == 0, out.stderr
        return out.stdout
    return "" if out.returncode == 0 else out.stderr or "failed"


def git_json(commit, path):
    return json.loads(subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True,
                                     check=True).stdout)
