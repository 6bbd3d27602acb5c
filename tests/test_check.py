"""`python run_notebooks.py --check`: the graders' re-scoring of the committed state, and what
staleness means: what the code computes, not how it is written."""
import json

import check_claims
import utils
import run_notebooks as runner
from conftest import run_check

RULES = ("each of the last 5 epochs", "Fewer than 8,000 parameters", "At most 15 epochs",
         "Target / Result / Analysis", "Receptive field")


def test_check_passes_on_the_committed_state_and_prints_one_row_per_rule(capsys):
    assert runner.main(["--check"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    for rule in RULES:
        assert any(line.startswith("PASS") and rule in line for line in out.splitlines()), rule
    for step in (1, 2, 3):
        assert any(line.startswith("PASS") and f"Step {step}: saved Model_{step} re-scored" in line
                   for line in out.splitlines())
    seeds = [line for line in out.splitlines() if "seed runs (stricter than the assignment)" in line]
    assert len(seeds) == 1 and seeds[0][:4] in ("PASS", "MISS")
    readme = (runner.ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if "seed runs (stricter than the assignment)" in line)
    assert ("| yes |" in row) == seeds[0].startswith("PASS"), "the check and the README say the same"


def test_check_fails_when_a_recorded_test_accuracy_is_changed_by_hand(project_copy, capsys):
    repo = project_copy()
    path = repo / "results" / "step3.json"
    record = json.loads(path.read_text())
    record["history"]["test_acc"][-1] += 0.05
    path.write_text(json.dumps(record))
    assert check_claims.main(repo) == 1
    out = capsys.readouterr().out
    assert any(line.startswith("FAIL") and "Step 3: saved Model_3 re-scored" in line for line in out.splitlines())
    assert "FAIL" in out.splitlines()[-1]



def test_check_without_the_test_digits_says_so_and_fails(monkeypatch, capsys):
    missing = utils.MNISTNotFoundError("no MNIST here: set MNIST_DATA_DIR to a folder that holds MNIST/raw/")

    def loaders(*args, **kwargs):
        raise missing
    monkeypatch.setattr(utils, "mnist_loaders", loaders)
    assert check_claims.main() == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("FAIL") and str(missing) in out[0]


TRAIN_EPOCH = '''    sums = RunningSums(next(model.parameters()).device)
    first_bad = torch.full_like(sums.correct, -1)  # first batch with a non-finite loss'''


def test_a_rewrite_that_computes_the_same_stales_nothing(project_copy):
    """A local variable renamed in train_epoch and two functions of utils.py swapped."""
    repo = project_copy()
    path = repo / "utils.py"
    text = path.read_text()
    count = text[text.index("def count_params("):text.index("def _pair(")]
    pair = text[text.index("def _pair("):text.index("RF_LAYERS = ")]
    epoch = text[text.index("def train_epoch("):text.index("@torch.no_grad()\ndef evaluate(")]
    assert epoch.count("sums") == 4
    text = text.replace(epoch, epoch.replace("sums", "totals")).replace(count + pair, pair + count)
    path.write_text(text)
    code, out = run_check(repo)
    assert code == 0, out[-3000:]
    assert any(l.startswith("PASS") and "probe reproduces" in l for l in out.splitlines())


def test_a_change_to_what_the_augmentation_computes_stales_the_records_made_with_it(project_copy):
    repo = project_copy({"utils.py": ("shift = (rand[:, 1:] * 2 - 1) * translate * 2",
                                      "shift = (rand[:, 1:] * 2 - 1) * translate * 2.5")})
    code, out = run_check(repo)
    assert code == 1
    line = next(l for l in out.splitlines() if "probe reproduces" in l)
    assert line.startswith("FAIL")
    for name in ("results/step3.json", "results/seeds.json", "experiments/search/ablation.json"):
        assert name in line, name
    for name in ("results/step1.json", "results/step2.json"):  # no augmentation: still valid
        assert name not in line, name
