"""`python run_notebooks.py --check`: the graders' re-scoring of the committed state."""
import json
import shutil

import check_claims
import run_notebooks as runner
from test_staging import SKIP

RULES = ("each of the last 5 epochs", "Fewer than 8,000 parameters", "At most 15 epochs",
         "Target / Result / Analysis", "Receptive field")


def test_check_passes_on_the_committed_state_and_prints_one_row_per_rule(capsys):
    assert runner.main(["--check"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    for rule in RULES:
        assert any(line.startswith("PASS") and rule in line for line in out.splitlines()), rule
    for step in (1, 2, 3):
        assert f"PASS  Step {step}: saved Model_{step} re-scored on the test set" in out
    seeds = [line for line in out.splitlines() if "seed runs (stricter than the assignment)" in line]
    assert len(seeds) == 1 and seeds[0][:4] in ("PASS", "MISS")
    readme = (runner.ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if "seed runs (stricter than the assignment)" in line)
    assert ("| yes |" in row) == seeds[0].startswith("PASS"), "the check and the README say the same"


def test_check_fails_when_a_recorded_test_accuracy_is_changed_by_hand(tmp_path, capsys):
    repo = tmp_path / "repo"
    shutil.copytree(runner.ROOT, repo, ignore=SKIP)
    path = repo / "results" / "step3.json"
    record = json.loads(path.read_text())
    record["history"]["test_acc"][-1] += 0.05
    path.write_text(json.dumps(record))
    assert check_claims.main(repo) == 1
    out = capsys.readouterr().out
    assert "FAIL  Step 3: saved Model_3 re-scored on the test set" in out
    assert "FAIL" in out.splitlines()[-1]


def copy_with(tmp_path, **appended):
    """A copy of the project with text appended to some of its files."""
    repo = tmp_path / "repo"
    shutil.copytree(runner.ROOT, repo, ignore=SKIP)
    for name, text in appended.items():
        path = repo / f"{name}.py"
        path.write_text(path.read_text() + text)
    return repo


def test_comments_in_the_named_code_or_any_change_to_report_stale_no_record(tmp_path, capsys):
    repo = copy_with(tmp_path, utils="\n# a comment\n", report="\n# a comment\n_ALSO = 1\n")
    assert check_claims.main(repo) == 0
    assert "PASS  Every results file made by this checkout's model.py and utils.py" in capsys.readouterr().out


def test_a_change_to_what_utils_does_fails_the_check_naming_the_stale_records(tmp_path, capsys):
    repo = copy_with(tmp_path, utils="\n_UNUSED = 1\n")
    assert check_claims.main(repo) == 1
    line = next(l for l in capsys.readouterr().out.splitlines() if "made by this checkout's" in l)
    assert line.startswith("FAIL")
    for name in sorted(p.name for p in (repo / "results").glob("*.json")):
        assert f"results/{name} (utils.py)" in line


def held_out_record(step3):
    held = json.loads(json.dumps(step3))
    held["settings"].update(evaluated_on="last 10,000 training images (held out)", train_images=50000)
    return held


def test_held_out_seeds_pass_when_only_the_evaluation_split_differs_from_step3():
    step3 = json.loads((runner.ROOT / "results" / "step3.json").read_text())
    rows = check_claims.holdout_checks(held_out_record(step3), step3)
    assert [ok for _, _, ok in rows] == [True, True]
    assert check_claims.holdout_checks(None, step3) == []


def test_held_out_seeds_fail_when_their_recipe_or_split_is_not_step3s():
    step3 = json.loads((runner.ROOT / "results" / "step3.json").read_text())
    other = held_out_record(step3)
    other["settings"]["degrees"] = 15.0
    assert [ok for _, _, ok in check_claims.holdout_checks(other, step3)] == [False, True]
    on_test = json.loads(json.dumps(step3))
    assert [ok for _, _, ok in check_claims.holdout_checks(on_test, step3)] == [True, False]
