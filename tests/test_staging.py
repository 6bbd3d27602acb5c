"""A failed or interrupted run leaves the committed notebooks and results as they were."""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import run_notebooks as runner
from conftest import ROOT, SKIP


@pytest.fixture
def repo(tmp_path):
    """A copy of the project to run the runner in place without touching this checkout."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT, copy, ignore=SKIP)
    return copy


def snapshot(root):
    """sha256 of every file of the copy (notebooks, results, README), by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def start(repo, *args):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "run_notebooks.py", *args], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_training(repo):
    """The runner on a short Step 2, once its kernel is training: (runner process, pids below it)."""
    proc = start(repo, "--steps", "2", "--train-subset", "3000", "--epochs", "15")
    for line in proc.stdout:
        if "step 2 | epoch  1 |" in line:
            break
    else:
        pytest.fail(f"the runner ended before its first epoch: {proc.stderr.read()[-2000:]}")
    below = runner.descendants(proc.pid)
    assert below, "the runner should have a papermill child and a kernel by now"
    return proc, below


HANG = 300  # seconds: only a runner that hangs takes this long to stop (it takes about a second)


def communicate_or_fail(proc):
    """The runner's (stdout, stderr) once it has exited; a runner that has not exited after HANG
    seconds is killed and fails the test as hung.  No tighter bound: a loaded machine is slow."""
    try:
        return proc.communicate(timeout=HANG)
    except subprocess.TimeoutExpired:
        runner.kill_tree(proc.pid)
        pytest.fail(f"the runner had not stopped {HANG} s after the signal: it hangs")


def bad_data(tmp_path):
    """A data folder whose training images file is cut short: the data cell fails midway."""
    raw = tmp_path / "bad" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 100)
    return tmp_path / "bad"


@pytest.mark.parametrize("args", [["--steps", "2"], ["--steps", "3", "--seeds", "1", "2", "--jobs", "2"]],
                         ids=["step", "seeds"])
def test_a_step_failing_midway_leaves_committed_files_byte_for_byte(repo, tmp_path, args):
    before = snapshot(repo)
    proc = start(repo, *args, "--data-dir", str(bad_data(tmp_path)))
    out, err = communicate_or_fail(proc)
    assert proc.returncode == 1
    assert "Step" in err and "failed in cell" in err and "MNISTCorruptError" in err
    assert snapshot(repo) == before
    assert not list(repo.glob(".staging-*")) and not list((repo / "runs").rglob(".staging-*"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_step_is_stopped_with_its_kernel_and_leaves_files_unchanged(repo, sig):
    before = snapshot(repo)
    proc, below = start_training(repo)
    proc.send_signal(sig)
    _, err = communicate_or_fail(proc)
    assert proc.returncode != 0
    assert "interrupted" in err and "step 2" in err and "unchanged" in err
    time.sleep(0.5)
    assert not [pid for pid in below if runner.alive(pid)], "a papermill or kernel process survived"
    assert snapshot(repo) == before


def test_a_runner_killed_outright_takes_papermill_and_its_kernel_with_it(repo):
    before = snapshot(repo)
    proc, below = start_training(repo)
    proc.kill()  # SIGKILL: no handler of the runner runs
    communicate_or_fail(proc)
    deadline = time.monotonic() + HANG
    while [pid for pid in below if runner.alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [pid for pid in below if runner.alive(pid)], "a papermill or kernel process survived"
    stale = list(repo.glob(".staging-*"))
    assert stale, "a killed runner cannot clean up; the next run does"
    runner.clear_stale_stages(repo)
    assert snapshot(repo) == before and not list(repo.glob(".staging-*"))


def test_clearing_stale_stages_keeps_those_of_runners_still_running(tmp_path):
    ours = tmp_path / f".staging-step3-{os.getpid()}"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = tmp_path / f".staging-step3-{dead.pid}"
    for folder in (ours, gone):
        folder.mkdir()
    runner.clear_stale_stages(tmp_path)
    assert ours.is_dir() and not gone.exists()
