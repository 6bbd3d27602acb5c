"""The papermill runner: arguments, failures, README generation."""
import json

import pytest

import run_notebooks as runner


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "16"], "--epochs must be between 1 and 15"),
    (["--epochs", "0"], "--epochs must be between 1 and 15"),
    (["--steps", "4"], "invalid choice"),
    (["--steps", "1", "--seeds", "1", "2"], "--seeds runs Step 3 only"),
])
def test_bad_arguments_are_rejected_with_a_reason(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        runner.parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_quick_mode_writes_outside_the_committed_files():
    args = runner.parse_args(["--quick"])
    params = runner.notebook_parameters(args)
    assert args.out == "runs/quick" and params["results_dir"] == "runs/quick/results"
    assert params["epochs"] == 1 and params["train_subset"] == 2000


def test_a_failing_notebook_is_named_with_its_cell(tmp_path, capsys, monkeypatch):
    def failing(step, out_dir=None, parameters=None):
        raise runner.NotebookFailed(f"{runner.NOTEBOOKS[step]} failed in cell 4 (ValueError: boom)")
    monkeypatch.setattr(runner, "execute", failing)
    assert runner.main(["--steps", "2", "--out", str(tmp_path)]) == 1
    assert "Step2_LightModel.ipynb failed in cell 4 (ValueError: boom)" in capsys.readouterr().err


def test_papermill_failure_reports_notebook_cell_and_error(tmp_path):
    with pytest.raises(runner.NotebookFailed) as err:
        runner.execute(2, tmp_path, {"device": "tpu", "results_dir": str(tmp_path)})
    message = str(err.value)
    assert message.startswith("Step2_LightModel.ipynb failed in cell")
    assert "unknown device 'tpu'" in message


def test_readme_marker_with_an_unknown_name_is_an_error(tmp_path):
    (tmp_path / "results").mkdir()
    with pytest.raises(KeyError, match="'sedes' names no known section"):
        runner.render_readme("<!-- generated:sedes:begin -->\nold\n<!-- generated:sedes:end -->", tmp_path)


def test_readme_sections_without_results_say_how_to_make_them(tmp_path):
    (tmp_path / "results").mkdir()
    text = "<!-- generated:seeds:begin -->\nold\n<!-- generated:seeds:end -->"
    assert "Not run yet: `python run_notebooks.py --steps 3 --seeds 1 2 3 4 5`" in runner.render_readme(text, tmp_path)


def test_seeds_record_keeps_each_seed_curve_and_its_minimum():
    def rec(seed, accs):
        return dict(model="Model_3", params=7000, epochs=len(accs), device="cpu", torch="x", settings={},
                    seed=seed, wall_seconds=1.0, history={"test_acc": accs})
    s = runner.seeds_record([rec(1, [99.0, 99.5, 99.41, 99.42, 99.43, 99.44]),
                             rec(2, [99.0, 99.1, 99.2, 99.3, 99.5, 99.6])])
    assert [r["min_last"] for r in s["seeds"]] == [99.41, 99.1]
    assert s["seeds"][1]["best"] == 99.6 and s["seeds"][1]["last"] == 99.6
    table = runner.seeds_table(json.loads(json.dumps(s)))
    assert "| 2 | 99.10% | 99.60% | 99.60% | **no** |" in table
