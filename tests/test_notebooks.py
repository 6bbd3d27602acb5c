"""The three notebooks: structure, a headless smoke run, and the committed run's honesty."""
import hashlib
import json
import re
import subprocess
import sys
import types
import urllib.request

import pytest

import model as models
import plots
import records
import report
import run_notebooks as runner
import series
import sync_docs
import utils
from conftest import ROOT

STEPS = sorted(series.NOTEBOOKS)
EPOCH_LINE = re.compile(r"^epoch +\d+ \| lr .*$", re.M)


def notebook(step):
    return json.loads((ROOT / series.NOTEBOOKS[step]).read_text())


def code_cells(step):
    return [c for c in notebook(step)["cells"] if c["cell_type"] == "code"]


def record(step):
    return records.load_record(ROOT / "results" / f"step{step}.json")


def text_of(output):
    return "".join(output.get("text", ""))


# ----------------------------------------------------------------------------- structure

@pytest.mark.parametrize("step", STEPS)
def test_first_cell_is_target_result_analysis(step):
    first = notebook(step)["cells"][0]
    assert first["cell_type"] == "markdown"
    headings = re.findall(r"^## (\w+)", "".join(first["source"]), re.M)
    assert headings == ["Target", "Result", "Analysis"]


@pytest.mark.parametrize("step", STEPS)
def test_one_cell_is_tagged_parameters(step):
    tagged = [c for c in code_cells(step) if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1
    assert re.search(r"^epochs = \d+", "".join(tagged[0]["source"]), re.M)


@pytest.mark.parametrize("step", STEPS)
def test_imports_its_model_and_defines_no_module_or_loop(step):
    source = "\n".join("".join(c["source"]) for c in code_cells(step))
    assert f"from model import Model_{step}" in source
    assert not re.search(r"^\s*class\s", source, re.M), "models belong in model.py"
    assert not re.search(r"^\s*def\s", source, re.M), "helpers belong in utils.py"
    assert ".backward(" not in source and "for x, y in" not in source, "loops belong in utils.py"


def colab_cell(step):
    cells = [c for c in code_cells(step) if "google.colab" in "".join(c["source"])]
    assert len(cells) == 1
    return "".join(cells[0]["source"])


@pytest.mark.parametrize("step", STEPS)
def test_colab_cell_acts_only_in_colab(step):
    assert 'if "google.colab" in sys.modules:' in colab_cell(step)
    assert "colab.research.google.com" in "".join(notebook(step)["cells"][0]["source"])


def fake_colab(monkeypatch):
    """Pretend to be in Colab; returns the list that records every fetch and install."""
    calls = []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(urllib.request, "urlretrieve", lambda url, name: calls.append((url, name)))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(tuple(cmd)))
    return calls


@pytest.mark.parametrize("step", STEPS)
def test_colab_cell_with_the_placeholder_repo_stops_before_any_fetch(step, monkeypatch):
    calls = fake_colab(monkeypatch)
    with pytest.raises(ValueError, match=r"set `repo` in the parameters cell"):
        exec(colab_cell(step), {"repo": runner.PLACEHOLDER_REPO})
    assert calls == []


@pytest.mark.parametrize("step", STEPS)
def test_colab_cell_with_a_fork_fetches_the_library_and_installs_torchsummary(step, monkeypatch):
    calls = fake_colab(monkeypatch)
    exec(colab_cell(step), {"repo": "octo/s7"})
    fetched = {name for call in calls if len(call) == 2 and call[0].startswith("https://raw.githubusercontent.com/octo/s7/main/")
               for name in [call[1]]}
    assert fetched == set(series.LIBRARY), "Colab fetches the library the notebooks import"
    assert any("torchsummary==1.5.1" in call for call in calls if isinstance(call, tuple))


# ----------------------------------------------------------------------------- smoke run

def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*")) if p.is_file()}


def test_quick_papermill_run_of_every_notebook_writes_its_results(tmp_path):
    committed = digest(ROOT / "results")
    notebooks = {s: hashlib.sha256((ROOT / n).read_bytes()).hexdigest() for s, n in series.NOTEBOOKS.items()}
    assert runner.main(["--quick", "--device", "cpu", "--out", str(tmp_path)]) == 0
    for step in STEPS:
        rec = records.load_record(tmp_path / "results" / f"step{step}.json")
        assert rec["epochs"] == 1 and rec["model"] == f"Model_{step}"
        assert (tmp_path / "results" / f"Model_{step}.pt").is_file()
        out = json.loads((tmp_path / series.NOTEBOOKS[step]).read_text())
        assert out["metadata"]["papermill"]["output_path"] == series.NOTEBOOKS[step], "no machine paths"
    assert digest(ROOT / "results") == committed, "a smoke run must not touch results/"
    assert notebooks == {s: hashlib.sha256((ROOT / n).read_bytes()).hexdigest()
                         for s, n in series.NOTEBOOKS.items()}


# ----------------------------------------------------------------------------- the committed run

def test_every_record_reproduces_its_probe_with_this_checkouts_code():
    probed = [ROOT / p for p in series.PROBED]
    assert all(p.is_file() for p in probed), [str(p) for p in probed if not p.is_file()]
    stale = records.stale_records(probed)
    assert not stale, records.stale_message(stale)


@pytest.mark.parametrize("step", STEPS)
def test_every_step_record_names_where_it_ran_and_the_code_that_trained(step):
    data = record(step)
    assert {"git_commit", "torch", "device", "threads", "probe", "training_code"} <= set(data)
    assert data["probe"]["spec"] == records.probe_spec(data["model"], data["settings"])
    assert data["training_code"] == records.notebook_training_code(ROOT / series.NOTEBOOKS[step])


@pytest.mark.parametrize("step", STEPS)
def test_the_step_record_ran_the_steps_recipe_from_series(step):
    settings = {k: v for k, v in record(step)["settings"].items() if k not in records.NOT_RECIPE}
    assert settings == utils.check_recipe(series.recipe(step))
    assert record(step)["model"] == series.MODELS[step]


def test_seeds_ran_step_3s_model_recipe_and_training_code(seeds):
    step3 = record(3)
    assert seeds["settings"] == step3["settings"] and seeds["epochs"] == step3["epochs"]
    assert seeds["probe"]["spec"] == step3["probe"]["spec"]
    assert records.notebook_training_code(ROOT / series.NOTEBOOKS[3]) in seeds["training_code"]
    for entry in seeds.get("training_code_reproduced", []):
        assert entry["reproduces"] in seeds["training_code"] and entry["training_code"] in seeds["training_code"]


@pytest.mark.parametrize("step", STEPS)
def test_no_recorded_epoch_scores_near_chance(step):
    assert min(record(step)["history"]["test_acc"]) >= 15


def test_step3_meets_the_bar():
    rec = record(3)
    acc = rec["history"]["test_acc"]
    assert rec["params"] < 8000 and utils.count_params(models.Model_3()) == rec["params"]
    assert rec["epochs"] <= 15 and len(acc) == rec["epochs"]
    assert min(acc[-5:]) >= 99.4, f"last 5 epochs: {acc[-5:]}"


@pytest.mark.parametrize("step", STEPS)
def test_result_block_is_the_one_written_from_the_results_file(step):
    block = sync_docs.sections(ROOT / series.NOTEBOOKS[step])["result"]
    assert block == report.result_markdown(record(step))


def numbers_of_the_run(rec, gap=True):
    """The figures a Result block states, as the block prints them (gap: with the train-test
    scores of the weights at the end)."""
    s = report.score_history(rec["history"])
    tt = rec["train_test"]
    return ([f"{rec['params']:,}", f"{s['best_test']:.2f}% (epoch {s['best_test_epoch']})",
             f"{s['best_train']:.2f}% (epoch {s['best_train_epoch']})", f"min {s['min_last']:.2f}%"]
            + ([f"train {tt['train_acc']:.2f}%, test {tt['test_acc']:.2f}%"] if gap else [])
            + [f"{a:.2f}" for a in s["last"]])


@pytest.mark.parametrize("step", STEPS)
def test_every_number_in_the_result_block_is_in_the_results_file(step):
    rec, block = record(step), sync_docs.sections(ROOT / series.NOTEBOOKS[step])["result"]
    for figure in numbers_of_the_run(rec):
        assert figure in block, figure
    shown = re.search(r"last 5 epochs ([\d., ]+) \(%\)", block).group(1)
    assert [float(v) for v in shown.split(", ")] == [round(a, 2) for a in rec["history"]["test_acc"][-5:]]


@pytest.mark.parametrize("step", STEPS)
def test_printed_epoch_lines_are_the_recorded_history(step):
    printed = [line for c in code_cells(step) for o in c.get("outputs", [])
               for line in EPOCH_LINE.findall(text_of(o))]
    h = record(step)["history"]
    assert printed == [utils.epoch_line({k: h[k][i] for k in h}) for i in range(len(h["epoch"]))]


def cell_text(step, needle):
    """All printed text of the code cells whose source contains needle."""
    return "".join(text_of(o) for c in code_cells(step) if needle in "".join(c["source"])
                   for o in c.get("outputs", []))


@pytest.mark.parametrize("step", STEPS)
def test_printed_summary_and_receptive_field_are_the_recorded_ones(step):
    rec = record(step)
    net = getattr(models, rec["model"])()
    assert f"Trainable params: {rec['params']:,}" in cell_text(step, "print_layers")
    assert rec["rf_rows"] == utils.receptive_field(net)
    assert rec["receptive_field"] == utils.receptive_field(net)[-1]["rf"]
    assert report.format_rf_table(rec["rf_rows"]) in cell_text(step, "format_rf_table")
    printed = cell_text(step, "save_run")
    for figure in numbers_of_the_run(rec, gap=False):
        assert figure in printed, figure
    tt = rec["train_test"]
    assert f"acc {tt['train_acc']:6.2f}% (un-augmented) | test loss {tt['test_loss']:.4f} acc {tt['test_acc']:6.2f}%" \
        in cell_text(step, "train_test_scores")


@pytest.mark.parametrize("step", STEPS)
def test_committed_weights_give_the_recorded_test_accuracy(step, mnist):
    _, _, test_x, test_y = mnist
    rec = record(step)
    net = getattr(models, rec["model"])()
    records.load_weights(net, ROOT / "results" / f"{rec['model']}.pt")
    _, acc = utils.evaluate(net, utils.Loader(test_x, test_y, batch_size=1000))
    assert abs(acc - rec["history"]["test_acc"][-1]) <= 0.01 + 1e-9


@pytest.mark.parametrize("doc", sync_docs.DOCS)
def test_generated_sections_of_the_documents_are_up_to_date(doc):
    text, new = sync_docs.render_doc(doc)
    assert sync_docs.GENERATED.search(text), f"{doc} has no generated sections"
    assert new == text, "run `python run_notebooks.py --readme`"


# ----------------------------------------------------------------------------- hygiene

@pytest.mark.parametrize("step", STEPS)
def test_notebook_was_executed_top_to_bottom_in_one_go(step):
    counts = [c["execution_count"] for c in code_cells(step)]
    assert counts == list(range(1, len(counts) + 1))


@pytest.mark.parametrize("step", STEPS)
def test_notebook_is_clean_for_github(step):
    path = ROOT / series.NOTEBOOKS[step]
    nb, raw = notebook(step), path.read_text()
    assert "widgets" not in nb["metadata"]
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert not re.search(r"(/root/|/home/|/tmp/|/work/|/Users/|[A-Z]:\\\\)", raw), "absolute path in notebook"
    assert path.stat().st_size < 1_000_000
    assert not any(o["output_type"] == "error" for c in code_cells(step) for o in c.get("outputs", []))


@pytest.mark.parametrize("step", STEPS)
def test_notebook_shows_its_plots(step):
    images = [o for c in code_cells(step) for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= (3 if step == 3 else 2), "curves, mistakes (and augmented samples in Step 3)"


def test_seeds_record_holds_seeds_1_to_20_run_after_the_freeze_with_their_whole_curves(seeds):
    assert [row["seed"] for row in seeds["seeds"]] == list(range(1, 21))
    assert seeds["freeze"]["ran_after_freeze"] and seeds["settings"]["channels_last"] is True
    assert set(range(15, 21)).isdisjoint(seeds["freeze"]["seeds_recorded_before"])
    for row in seeds["seeds"]:
        assert len(row["test_acc"]) == seeds["epochs"] <= 15
        assert min(row["test_acc"][-5:]) == row["min_last"], f"seed {row['seed']}"


@pytest.mark.parametrize("step", STEPS)
def test_committed_notebook_shows_no_progress_bar(step):
    bars = [o for c in code_cells(step) for o in c.get("outputs", []) if o["output_type"] == "stream"
            and re.search(r"\r|it/s|s/it", text_of(o))]
    assert not bars


@pytest.mark.parametrize("step", STEPS)
def test_each_step_shows_its_errors_per_class_with_their_count(step):
    counts = plots.confusion(load_model(step), utils.Loader(*utils.load_mnist(train=False), batch_size=1000))
    wrong = int(counts.sum() - counts.trace())
    assert wrong == round((100 - record(step)["history"]["test_acc"][-1]) * 100)
    assert any("plot_confusion(" in "".join(c["source"]) and images_of(c) for c in code_cells(step))


def test_step_1_draws_the_receptive_field_and_step_3_its_augmentation_and_learning_rate():
    assert any("plot_receptive_field(" in "".join(c["source"]) and images_of(c) for c in code_cells(1))
    assert any("plot_augmented(" in "".join(c["source"]) and images_of(c) for c in code_cells(3))
    assert any("steps_per_epoch=" in "".join(c["source"]) and "plot_history(" in "".join(c["source"])
               and images_of(c) for c in code_cells(3))


def images_of(cell):
    return [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]


def load_model(step):
    net = getattr(models, series.MODELS[step])()
    return records.load_weights(net, ROOT / "results" / f"{series.MODELS[step]}.pt")
