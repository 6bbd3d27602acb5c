"""Every factual sentence of the notebooks' Analysis blocks, checked against the run it describes.

Each claim is a phrase that must stay in the Analysis and a check of the results record; edit
one and the other must follow.
"""
import json
import subprocess
from pathlib import Path

import pytest

import report
import sync_docs

ROOT = Path(__file__).resolve().parents[1]


def rec(step):
    return report.load_record(ROOT / "results" / f"step{step}.json")


def h(step, key):
    return rec(step)["history"][key]


def gaps(step):
    return [a - b for a, b in zip(h(step, "train_acc"), h(step, "test_acc"))]


def drops(values):
    return sum(b < a for a, b in zip(values, values[1:]))


def seed_minimums():
    seeds = json.loads((ROOT / "results" / "seeds.json").read_text())
    return [row["min_last"] for row in seeds["seeds"]]


def rolling_means(values, n=3):
    return [sum(values[i:i + n]) / n for i in range(len(values) - n + 1)]


def final_gap(step):
    """Train minus test accuracy of the final weights, both measured in eval mode."""
    return rec(step)["train_test"]["train_acc"] - rec(step)["train_test"]["test_acc"]


def last_is_best(values):
    return values[-1] == max(values)


CLAIMS = {
    1: [
        ("far above chance after the first epoch", lambda: h(1, "test_acc")[0] > 90),
        ("its training loss falls in almost every epoch", lambda: drops(h(1, "train_loss")) >= len(h(1, "train_loss")) - 3),
        ("the test loss trends down with it", lambda: h(1, "test_loss")[-1] < h(1, "test_loss")[len(h(1, "test_loss")) // 2] < h(1, "test_loss")[0]),
        ("it falls back from one epoch to the next four times between epochs 7 and 15",
         lambda: drops(h(1, "test_acc")[6:]) == 4),
        ("train accuracy reaches its best in the last epoch", lambda: last_is_best(h(1, "train_acc"))),
        ("its lowest test loss comes in the last two epochs", lambda: min(h(1, "test_loss")[-2:]) == min(h(1, "test_loss"))),
        ("over the last three epochs train accuracy runs further ahead of test accuracy than over any three epochs before",
         lambda: rolling_means(gaps(1))[-1] == max(rolling_means(gaps(1)))),
        ("do better on the training digits than on the test digits", lambda: rec(1)["train_test"]["train_acc"] > rec(1)["train_test"]["test_acc"]),
        ("far over the 8,000-parameter budget", lambda: rec(1)["params"] > 2 * 8000),
    ],
    2: [
        ("train and test accuracy both stay below Step 1's in every epoch",
         lambda: all(a < b for a, b in zip(h(2, "train_acc"), h(1, "train_acc")))
         and all(a < b for a, b in zip(h(2, "test_acc"), h(1, "test_acc")))),
        ("its final weights score lower on them than Step 1's", lambda: rec(2)["train_test"]["train_acc"] < rec(1)["train_test"]["train_acc"]),
        ("its final weights show a smaller train-test gap than Step 1's",
         lambda: 0 < final_gap(2) < final_gap(1)),
        ("the test loss rises over epochs 12 to 14 while the training loss keeps falling",
         lambda: h(2, "test_loss")[11] < h(2, "test_loss")[12] < h(2, "test_loss")[13]
         and h(2, "train_loss")[11] > h(2, "train_loss")[12] > h(2, "train_loss")[13]),
        ("before it drops again in the last epoch", lambda: h(2, "test_loss")[-1] < h(2, "test_loss")[-2]),
        ("99.4% is out of reach", lambda: max(h(2, "test_acc")) < 99.4),
    ],
    3: [
        ("the first epoch's test accuracy is already above 95%", lambda: h(3, "test_acc")[0] > 95),
        ("Test accuracy first reaches 99.4% in epoch 9 and never falls below it afterwards",
         lambda: next(i for i, a in enumerate(h(3, "test_acc"), 1) if a >= 99.4) == 9
         and min(h(3, "test_acc")[8:]) >= 99.4),
        ("its lowest test loss comes in the last two epochs", lambda: min(h(3, "test_loss")[-2:]) == min(h(3, "test_loss"))),
        ("the test accuracy of the last five epochs stays within 0.03 points",
         lambda: max(h(3, "test_acc")[-5:]) - min(h(3, "test_acc")[-5:]) <= 0.03 + 1e-9),
        ("stays below the test accuracy in every epoch", lambda: all(g < 0 for g in gaps(3))),
        ("train accuracy is only about a tenth of a point above test accuracy", lambda: 0.05 < final_gap(3) < 0.15),
        ("all ten hold the bar in each of their last five epochs, two of them exactly at it",
         lambda: len(seed_minimums()) == 10 and min(seed_minimums()) >= 99.4
         and sum(abs(m - 99.4) < 1e-9 for m in seed_minimums()) == 2),
        ("the final weights of the plain nets of Steps 1 and 2 run more than twice as far ahead on the training digits",
         lambda: min(final_gap(1), final_gap(2)) > 2 * final_gap(3) > 0),
    ],
}


@pytest.mark.parametrize("step, phrase, check", [(s, p, c) for s, claims in CLAIMS.items() for p, c in claims],
                         ids=lambda v: v if isinstance(v, str) else None)
def test_analysis_claim_is_true_of_its_run(step, phrase, check):
    analysis = " ".join(sync_docs.sections(ROOT / sync_docs.NOTEBOOKS[step])["analysis"].split())
    assert phrase in analysis, f"Step {step}'s Analysis no longer says {phrase!r}: update CLAIMS"
    assert check(), f"Step {step}'s Analysis says {phrase!r}, which its run does not show"


def holdout_minimums():
    held = json.loads((ROOT / "results" / "holdout.json").read_text())
    return [row["min_last"] for row in held["seeds"]]


def sweep(name=None):
    runs = {r["name"]: r for r in json.loads((ROOT / "docs" / "records" / "recipe_sweep_b7d79cc.json").read_text())["runs"]}
    return runs[name] if name else runs


def sweep_rank(name, key="mean_min5"):
    """1 for the recipe with the highest value of key, 2 for the next, ..."""
    return sorted(sweep().values(), key=lambda r: -r[key]).index(sweep(name)) + 1


README_CLAIMS = [
    ("compared twelve recipes", lambda: len(sweep()) == 12),
    ("the highest mean of the per-seed minimums of the twelve, and, tied with the peer's shape without shifts, the most seeds at the bar",
     lambda: sweep_rank("tr0.05") == 1 and sweep("tr0.05")["frac_9940"] == sweep("peer_tr0")["frac_9940"]
     and all(sweep("tr0.05")["frac_9940"] > r["frac_9940"] for n, r in sweep().items() if n not in ("tr0.05", "peer_tr0"))),
    ("The peer's shape with rotation only came second; with shifts of 0.1 it lost most of that lead",
     lambda: sweep_rank("peer_tr0") == 2
     and sweep("peer_ours")["mean_min5"] - sweep("base")["mean_min5"]
     < (sweep("peer_tr0")["mean_min5"] - sweep("base")["mean_min5"]) / 2),
    ("Label smoothing 0.1, with either peak, was the lowest of the twelve, more than a tenth of a point below the baseline",
     lambda: {sweep_rank("ls0.1"), sweep_rank("lr0.3_ls0.1")} == {11, 12}
     and all(sweep("base")["mean_min5"] - sweep(n)["mean_min5"] > 0.1 for n in ("ls0.1", "lr0.3_ls0.1"))),
    ("each came within a hundredth of a point of the baseline's mean or below it",
     lambda: all(sweep(n)["mean_min5"] <= sweep("base")["mean_min5"] + 0.01
                 for n in ("drop0", "clean6", "m3pad", "bs64_lr0.1", "adam_oc0.01", "two_pool"))),
    ("all ten seeds hold the bar in each of their last five epochs, but two of them sit exactly at it in their worst epoch",
     lambda: len(seed_minimums()) == 10 and min(seed_minimums()) >= 99.4
     and sum(abs(m - 99.4) < 1e-9 for m in seed_minimums()) == 2),
    ("It falls below the bar on two of the four, by a few digits",
     lambda: sum(m < 99.4 for m in holdout_minimums()) == 2 and len(holdout_minimums()) == 4
     and min(holdout_minimums()) > 99.3),
    ("its mean minimum is lower here than on seeds 1 to 10",
     lambda: sum(holdout_minimums()) / 4 < sum(seed_minimums()) / len(seed_minimums())),
]


@pytest.mark.parametrize("phrase, check", README_CLAIMS, ids=[p for p, _ in README_CLAIMS])
def test_readme_claim_about_the_seed_runs_is_true_of_them(phrase, check):
    readme = " ".join(((ROOT / "README.md").read_text() + (ROOT / "docs" / "recipe-history.md").read_text()).split())
    assert phrase in readme, f"the README no longer says {phrase!r}: update README_CLAIMS"
    assert check(), f"the README says {phrase!r}, which the seed records do not show"


def test_readme_names_which_sweep_call_ran_the_kept_script():
    readme = " ".join((ROOT / "docs" / "recipe-history.md").read_text().split())
    phrase = "the commit that holds the script as it ran for the last three recipes (the first nine"
    assert phrase in readme
    calls = [r["call"] for r in sweep().values()]
    assert calls.count(2) == 3 and calls.count(1) == 9
    assert "trains 24 copies of a recipe" in readme and "the sweep's 24 seeds per recipe" in readme
    assert {len(r["min5"]) for r in sweep().values()} == {24}


def test_readme_claim_about_the_held_out_seeds_under_round_two_is_true_of_that_record():
    readme = " ".join((ROOT / "docs" / "recipe-history.md").read_text().split())
    phrase = ("The same four seeds had been run with round two's recipe too (commit bd1275e): one of "
              "them held the bar there, and the mean of their minimums was the same as now.")
    assert phrase in readme
    try:
        old = json.loads(subprocess.run(["git", "show", "bd1275e:results/holdout.json"], cwd=ROOT,
                                        capture_output=True, check=True).stdout)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no git history here to read round two's held-out record")
    old_mins = [row["min_last"] for row in old["seeds"]]
    assert [row["seed"] for row in old["seeds"]] == [111, 112, 113, 114]
    assert old["settings"]["translate"] == 0.1 and old["settings"]["scheduler"]["max_lr"] == 0.2
    assert sum(m >= 99.4 for m in old_mins) == 1
    assert round(sum(old_mins) / 4, 2) == round(sum(holdout_minimums()) / 4, 2)


def test_readme_claim_about_round_twos_seeds_is_true_of_that_record():
    readme = " ".join((ROOT / "docs" / "recipe-history.md").read_text().split())
    assert "Round two's recipe fell below the bar on two of seeds 1 to 10 (that record is in the git history)" in readme
    try:  # bcfe5a6: the last commit with round two's seeds record
        old = json.loads(subprocess.run(["git", "show", "bcfe5a6:results/seeds.json"], cwd=ROOT,
                                        capture_output=True, check=True).stdout)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no git history here to read round two's seeds record")
    assert old["settings"]["translate"] == 0.1 and old["settings"]["scheduler"]["max_lr"] == 0.2
    assert [row["seed"] for row in old["seeds"]] == list(range(1, 11))
    assert sum(row["min_last"] < 99.4 for row in old["seeds"]) == 2
