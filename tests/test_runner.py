"""The papermill runner: arguments, failures, README generation, seeds kept or vouched for."""
import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import records
import run_notebooks as runner
import series
import sync_docs
from conftest import ROOT, SKIP


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "16"], "--epochs must be between 1 and 15"),
    (["--epochs", "0"], "--epochs must be between 1 and 15"),
    (["--steps", "4"], "invalid choice"),
    (["--steps", "1", "--seeds", "1", "2"], "--seeds runs Step 3 only"),
    (["--seeds", "1", "--holdout", "10000"], "--holdout is for Step 3 runs kept apart"),
    (["--steps", "3", "--holdout", "10000"], "--holdout is for Step 3 runs kept apart"),
])
def test_bad_arguments_are_rejected_with_a_reason(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        runner.parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_quick_mode_writes_outside_the_committed_files():
    args = runner.parse_args(["--quick"])
    params = runner.notebook_parameters(args)
    assert args.out == "runs/quick"
    assert params == {"epochs": 1, "train_subset": 2000, "progress": False}


def test_a_plain_full_run_passes_no_parameters_so_no_cell_is_injected():
    assert runner.notebook_parameters(runner.parse_args([])) == {}


def test_a_failing_notebook_is_named_with_its_cell(tmp_path, capsys, monkeypatch):
    def failing(src, stage, *args, **kwargs):
        raise runner.NotebookFailed(f"{src} failed in cell 4 (ValueError: boom)")
    monkeypatch.setattr(runner, "execute", failing)
    assert runner.main(["--steps", "2", "--out", str(tmp_path)]) == 1
    assert "Step2_LightModel.ipynb failed in cell 4 (ValueError: boom)" in capsys.readouterr().err
    assert not list(tmp_path.glob(".staging-*")), "the staging folder is removed"


def test_papermill_failure_reports_notebook_cell_error_and_traceback_tail(tmp_path):
    with pytest.raises(runner.NotebookFailed) as err:
        runner.execute(series.NOTEBOOKS[2], tmp_path, {"device": "tpu"}, on_line=lambda line: None)
    message = str(err.value)
    assert message.startswith("Step2_LightModel.ipynb failed in cell")
    assert "unknown device 'tpu'" in message
    assert "Traceback" in message or "get_device" in message, "the tail of the traceback is kept"


def tiny_notebook(folder, source):
    path = Path(folder) / "Tiny.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    stage = Path(folder) / "stage"
    stage.mkdir()
    return path, stage


@pytest.mark.parametrize("source, timeout, words", [
    ("import os; os._exit(3)", None, ("DeadKernel", "died")),
    ("import time; time.sleep(60)", 3, ("Timeout", "timed out"))], ids=["dead kernel", "timeout"])
def test_a_dead_kernel_or_a_timeout_is_reported_with_the_notebook_name(tmp_path, source, timeout, words):
    path, stage = tiny_notebook(tmp_path, source)
    with pytest.raises(runner.NotebookFailed) as err:
        runner.execute(path, stage, on_line=lambda line: None, timeout=timeout)
    assert str(err.value).startswith("Tiny.ipynb failed")
    assert any(w in str(err.value) for w in words), str(err.value)


def test_quick_run_shows_each_epoch_and_the_step_line_but_no_kernel_warning(tmp_path, capsys):
    assert runner.main(["--quick", "--steps", "1", "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "== step 1: Step1_Skeleton.ipynb" in out
    assert "  step 1 | epoch  1 | lr " in out
    assert "step 1 Step1_Skeleton.ipynb" in out and "min last 5" in out
    assert "without encryption" not in out + err


@pytest.mark.parametrize("url, repo", [
    ("https://github.com/octo/s7.git", "octo/s7"), ("git@github.com:octo/s7.git", "octo/s7"),
    ("https://github.com/octo/s7", "octo/s7"), ("https://gitlab.com/octo/s7.git", None),
    ("/srv/git/s7", None)])
def test_github_repository_is_read_from_the_origin_address(url, repo):
    assert runner.github_repo(url) == repo


def test_readme_marker_with_an_unknown_name_is_an_error(tmp_path):
    (tmp_path / "results").mkdir()
    with pytest.raises(sync_docs.DocsError, match="'sedes' names no known section"):
        sync_docs.render_readme("<!-- generated:sedes:begin -->\nold\n<!-- generated:sedes:end -->", tmp_path)


def test_readme_sections_without_results_say_how_to_make_them(tmp_path):
    (tmp_path / "results").mkdir()
    text = "<!-- generated:seeds:begin -->\nold\n<!-- generated:seeds:end -->"
    assert "Not run yet: `python run_notebooks.py --steps 3 --seeds 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 --jobs 2`" in sync_docs.render_readme(text, tmp_path)


def test_seeds_record_keeps_each_seed_curve_and_its_minimum():
    def rec(seed, accs):
        return dict(model="Model_3", params=7000, epochs=len(accs), device="cpu", torch="x", settings={},
                    seed=seed, wall_seconds=1.0, history={"test_acc": accs})
    s = runner.seeds_record([rec(1, [99.0, 99.5, 99.41, 99.42, 99.43, 99.44]),
                             rec(2, [99.0, 99.1, 99.2, 99.3, 99.5, 99.6])])
    assert [r["min_last"] for r in s["seeds"]] == [99.41, 99.1]
    assert s["seeds"][1]["best"] == 99.6 and s["seeds"][1]["last"] == 99.6
    table = sync_docs.seeds_table(json.loads(json.dumps(s)))
    assert "| 2 | 99.10% | 9,910 | 99.60% | **no** |" in table and "Correct of 10,000 there" in table
    assert "Worst seed: 99.10% (9,910 of 10,000 digits, 30 below the 9,940 the bar asks for)" in table


def test_repo_option_points_every_badge_and_parameter_at_the_fork(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(runner.ROOT, repo, ignore=SKIP)
    out = subprocess.run([sys.executable, "run_notebooks.py", "--repo", "octo/s7"], cwd=repo,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in series.NOTEBOOKS.values():
        nb = json.loads((repo / name).read_text())
        first = "".join(nb["cells"][0]["source"])
        assert f"colab.research.google.com/github/octo/s7/blob/main/{name}" in first
        params = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])][0]
        assert 'repo = "octo/s7"' in "".join(params["source"])
        assert "OWNER/REPO" not in first + "".join(params["source"])
    assert not list((repo / "results").glob("*.tmp")) and not (repo / "runs").exists(), "nothing ran"


@pytest.mark.parametrize("bad", ["octo", "octo/s7/extra", "https://github.com/octo/s7"])
def test_repo_option_rejects_what_is_not_owner_slash_name(bad, capsys):
    with pytest.raises(SystemExit):
        runner.parse_args(["--repo", bad])
    assert "owner/name" in capsys.readouterr().err


def test_a_notebook_that_writes_no_results_is_a_failure_naming_it(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "execute", lambda src, stage, *a, **k: 1.0)  # "ran", wrote nothing
    with pytest.raises(runner.NotebookFailed, match=r"Step1_Skeleton.ipynb ran to the end but wrote no results/step1.json"):
        runner.run_step(1, tmp_path, echo=lambda *a: None)
    assert list(tmp_path.iterdir()) == [], "the staging folder is removed"


def fake_seed_run(folder, seed, notebook=None, probe=None):
    """A finished Step 3 seed run as run_seeds leaves it: the executed notebook with papermill's
    parameters cell, and its results file (Step 3's committed record as this seed's)."""
    nb = notebook or json.loads((ROOT / series.NOTEBOOKS[3]).read_text())
    nb = copy.deepcopy(nb)
    nb["cells"].insert(3, dict(cell_type="code", metadata=dict(tags=["injected-parameters"]), outputs=[],
                               execution_count=None, source=f"# Parameters\nseed = {seed}\nprogress = False\n"))
    (folder / "results").mkdir(parents=True)
    (folder / series.NOTEBOOKS[3]).write_text(json.dumps(nb))
    record = dict(records.load_record(ROOT / "results" / "step3.json"), seed=seed,
                  training_code=records.notebook_training_code(folder / series.NOTEBOOKS[3]))
    if probe:
        record["probe"] = probe
    (folder / "results" / "step3.json").write_text(json.dumps(record))
    return record


def cell(kind, source):
    return dict(cell_type=kind, metadata={}, source=source, **(dict(outputs=[], execution_count=None)
                                                               if kind == "code" else {}))


def test_a_finished_seed_is_kept_while_what_decides_its_numbers_is_unchanged(tmp_path):
    record = fake_seed_run(tmp_path / "a", 3)
    assert runner.finished_seed(tmp_path / "a", dict(seed=3, progress=False)) == record
    assert runner.finished_seed(tmp_path / "a", dict(seed=4, progress=False)) is None
    assert runner.finished_seed(tmp_path / "a", dict(seed=3, progress=False, epochs=2)) is None
    assert runner.finished_seed(tmp_path / "none", dict(seed=3, progress=False)) is None
    other = json.loads(json.dumps(record["probe"]))
    other["outcome"]["train_loss"][-1] *= 1.001  # what other code would have computed
    fake_seed_run(tmp_path / "b", 3, probe=other)
    assert runner.finished_seed(tmp_path / "b", dict(seed=3, progress=False)) is None


def notebook_now(folder, edit):
    """A Step 3 notebook in folder: the committed one with edit(cells) applied."""
    nb = json.loads((ROOT / series.NOTEBOOKS[3]).read_text())
    edit(nb["cells"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / series.NOTEBOOKS[3]).write_text(json.dumps(nb))
    return folder


def test_cells_after_training_may_change_cells_before_it_may_not(tmp_path, monkeypatch):
    record = fake_seed_run(tmp_path / "seed_3", 3)  # run by the committed notebook

    def after(cells):  # a new section after training: words and a plot
        cells[-2:-2] = [cell("markdown", "## Another look"), cell("code", "fig = plots.plot_confusion(model, test_loader, 'again')")]

    def before(cells):  # a cell before training that draws from the training loader
        i = next(i for i, c in enumerate(cells) if "utils.fit(" in "".join(c["source"]))
        cells.insert(i, cell("code", "x, y = next(iter(train_loader))"))
    monkeypatch.setattr(runner, "ROOT", notebook_now(tmp_path / "after", after))
    assert runner.finished_seed(tmp_path / "seed_3", dict(seed=3, progress=False)) == record
    monkeypatch.setattr(runner, "ROOT", notebook_now(tmp_path / "before", before))
    assert runner.finished_seed(tmp_path / "seed_3", dict(seed=3, progress=False)) is None


def test_seeds_hold_for_new_training_code_only_when_it_reproduced_step_3_bit_for_bit(tmp_path):
    step3 = records.load_record(ROOT / "results" / "step3.json")
    seeds = records.read_json(ROOT / "results" / "seeds.json")
    path = tmp_path / "seeds.json"
    records.write_json(dict(seeds, training_code=[step3["training_code"]]), path)
    moved = json.loads(json.dumps(step3))
    moved["history"]["test_acc"][3] += 0.01
    assert not runner.vouch_for_seeds(step3, dict(moved, training_code="new"), path)
    assert not runner.vouch_for_seeds(step3, dict(step3, training_code="new", threads=step3["threads"] + 1), path)
    assert runner.vouch_for_seeds(step3, dict(step3, training_code="new"), path)
    kept = records.read_json(path)
    assert kept["training_code"] == [step3["training_code"], "new"]
    assert kept["training_code_reproduced"][-1]["reproduces"] == step3["training_code"]
    assert not runner.vouch_for_seeds(step3, dict(step3, training_code="new"), path), "once"


def test_resume_is_only_for_seeds():
    with pytest.raises(SystemExit):
        runner.parse_args(["--resume"])
