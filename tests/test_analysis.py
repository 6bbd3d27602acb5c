"""The facts the texts state, checked against the records they come from.

Each claim is the figures a sentence states (the words and numbers that must appear in the
text) and a check that the record shows what the sentence says of them.  The wording around
the figures is free: rephrase a sentence and no test changes, as long as its figures stay.
"""
import json
import re
import subprocess
import sys
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
    """Per-epoch train minus test accuracy, as the epoch lines show them."""
    return [a - b for a, b in zip(h(step, "train_acc"), h(step, "test_acc"))]


def end_gap(step):
    """Train minus test accuracy of the weights at the end, both measured in eval mode."""
    return rec(step)["train_test"]["train_acc"] - rec(step)["train_test"]["test_acc"]


def falls(values):
    return sum(b < a for a, b in zip(values, values[1:]))


def pct(v):
    return f"{v:.2f}%"


def pt(v):
    return f"{v:+.2f}"


def text_of(step, part):
    return " ".join(sync_docs.sections(ROOT / sync_docs.NOTEBOOKS[step])[part].split())


def words(text):
    return len(re.findall(r"[A-Za-z0-9][\w'.,%-]*", text))


def seeds():
    return json.loads((ROOT / "results" / "seeds.json").read_text())


def holdout():
    return json.loads((ROOT / sync_docs.HOLDOUT_HISTORY).read_text())


def held(record):
    return sum(r["min_last"] >= 99.4 for r in record["seeds"])


def first_at_bar(step):
    """The first epoch (from 1) at or above 99.40% test accuracy."""
    return next(i for i, a in enumerate(h(step, "test_acc"), 1) if a >= 99.4)


def mean_min(record):
    return sum(r["min_last"] for r in record["seeds"]) / len(record["seeds"])


def worst_margin(record):
    """Digits above (+) or below (-) the 9,940 the bar asks for, at the worst seed's worst epoch."""
    return -max(digits_below(record, r["seed"]) for r in record["seeds"])


def confirm_record():
    return json.loads((ROOT / "benchmarks" / "confirm.json").read_text())


def present_16():
    """The present (adopted) recipe over the search's and the confirmation's 16 held-out seeds."""
    return confirm_record()["sixteen_seeds"]["present"]


def digits_below(record, seed):
    """Digits short of the 9,940 the bar asks for, at the seed's worst epoch of the last five."""
    row = next(r for r in record["seeds"] if r["seed"] == seed)
    return 9940 - round(row["min_last"] * record["test_images"] / 100)



CLAIMS = {
    1: [
        ((pct(h(1, "test_acc")[0]), "after the first epoch"), lambda: True),
        ((pct(max(h(1, "test_acc"))), "epoch 12"), lambda: h(1, "test_acc").index(max(h(1, "test_acc"))) == 11),
        (("target is met",), lambda: max(h(1, "test_acc")) >= 99.0),
        (("13 of the 14 epochs",), lambda: falls(h(1, "train_loss")) == 13),
        (("from epoch 7 on", "falls back four times"), lambda: falls(h(1, "test_acc")[6:]) == 4),
        ((f"{min(h(1, 'test_acc')[-5:]):.2f}-{max(h(1, 'test_acc')[-5:]):.2f}%", "below 99.4%"),
         lambda: max(h(1, "test_acc")[-5:]) < 99.4),
        ((pct(h(1, "train_acc")[-1]), "last three epochs"),
         lambda: h(1, "train_acc")[-4] < h(1, "train_acc")[-3] < h(1, "train_acc")[-2] < h(1, "train_acc")[-1]
         and max(h(1, "test_acc")[-3:]) < max(h(1, "test_acc"))),
        ((f"{pt(min(gaps(1)[-3:]))} to {pt(max(gaps(1)[-3:]))} points",),
         lambda: min(gaps(1)[-3:]) > max(gaps(1)[:-3])),
        (("test loss, though, is lowest in epoch 15", f"({h(1, 'test_loss')[14]:.4f})"),
         lambda: min(h(1, "test_loss")) == h(1, "test_loss")[14]),
        ((f"{end_gap(1):.2f} points better on the training digits",), lambda: end_gap(1) > 0),
        ((f"{rec(1)['params']:,}", f"{rec(1)['params'] / 8000:.1f} times"), lambda: rec(1)["params"] > 8000),
    ],
    2: [
        ((pct(max(h(1, "test_acc"))), pct(max(h(2, "test_acc")))), lambda: max(h(2, "test_acc")) < max(h(1, "test_acc"))),
        ((pct(min(h(1, "test_acc")[-5:])), pct(min(h(2, "test_acc")[-5:]))),
         lambda: min(h(2, "test_acc")[-5:]) < min(h(1, "test_acc")[-5:])),
        (("single runs (seed 1)", "about half a point"), lambda: rec(1)["seed"] == rec(2)["seed"] == 1 and 0.4 <= max(h(1, "test_acc")) - max(h(2, "test_acc")) <= 0.6
         and 0.4 <= min(h(1, "test_acc")[-5:]) - min(h(2, "test_acc")[-5:]) <= 0.6),
        (("below Step 1's in every epoch",),
         lambda: all(a < b for a, b in zip(h(2, "train_acc"), h(1, "train_acc")))
         and all(a < b for a, b in zip(h(2, "test_acc"), h(1, "test_acc")))),
        ((pct(rec(2)["train_test"]["train_acc"]), pct(rec(1)["train_test"]["train_acc"])),
         lambda: rec(2)["train_test"]["train_acc"] < rec(1)["train_test"]["train_acc"]),
        (("epochs 12 to 14", f"{h(2, 'test_loss')[11]:.4f} to {h(2, 'test_loss')[13]:.4f}"),
         lambda: h(2, "test_loss")[11] < h(2, "test_loss")[12] < h(2, "test_loss")[13]
         and h(2, "train_loss")[11] > h(2, "train_loss")[12] > h(2, "train_loss")[13]),
        ((f"drops to {h(2, 'test_loss')[14]:.4f} in epoch 15",), lambda: h(2, "test_loss")[14] < h(2, "test_loss")[13]),
        (("epochs 13 and 14", f"{pt(gaps(2)[12])} and {pt(gaps(2)[13])} points"),
         lambda: min(gaps(2)[12:14]) > max(gaps(1))),
    ],
    3: [
        ((f"{rec(3)['params'] - rec(2)['params']} parameters more", f"{rec(3)['params']:,}"), lambda: True),
        ((f"reaches the bar in epoch {first_at_bar(3)} ({pct(h(3, 'test_acc')[first_at_bar(3) - 1])})",
          "never falls below it afterwards"),
         lambda: min(h(3, "test_acc")[first_at_bar(3) - 1:]) >= 99.4),
        ((f"between {pct(min(h(3, 'test_acc')[-5:]))} and {pct(max(h(3, 'test_acc')[-5:]))}",), lambda: True),
        ((f"{end_gap(3):.2f} points above test accuracy", f"{end_gap(1):.2f} in Step 1", f"{end_gap(2):.2f} in Step 2"),
         lambda: 0 < end_gap(3) < min(end_gap(1), end_gap(2))),
        ((f"{len(seeds()['seeds'])} seeds run after the recipe was frozen hold the bar",
          f"the worst by {worst_margin(seeds())} test images"),
         lambda: held(seeds()) == len(seeds()["seeds"]) == 20 and worst_margin(seeds()) > 0),
        ((f"held it on {present_16()['at_bar']} of 16 seeds", f"mean of the per-seed minimums {present_16()['mean_min']:.2f}%",
          f"against {mean_min(seeds()):.2f}% on the test set"),
         lambda: present_16()["seeds"] == list(range(200, 216))
         and confirm_record()["recipe_settings"]["present"]["settings"]["channels_last"] is seeds()["settings"]["channels_last"]),
    ],
}


@pytest.mark.parametrize("step, figures, check", [(s, f, c) for s, claims in CLAIMS.items() for f, c in claims],
                         ids=lambda v: " / ".join(v) if isinstance(v, tuple) else None)
def test_analysis_states_figures_its_run_shows(step, figures, check):
    analysis = text_of(step, "analysis")
    for figure in figures:
        assert figure in analysis, f"Step {step}'s Analysis no longer states {figure!r}: update CLAIMS"
    assert check(), f"Step {step}'s Analysis states {figures}, which its run does not show"


@pytest.mark.parametrize("step", sorted(sync_docs.NOTEBOOKS))
def test_target_and_analysis_are_short(step):
    assert words(text_of(step, "target")) <= 105 and words(text_of(step, "analysis")) <= 155


def test_step_2s_target_follows_from_step_1():
    target = text_of(2, "target")
    assert pct(max(h(1, "test_acc"))) in target and f"{rec(1)['params']:,}" in target
    assert f"{rec(2)['params']:,}" in target and rec(2)["params"] < 8000


# ----------------------------------------------------------------------------- the history

def history_doc():
    return " ".join((ROOT / "docs" / "recipe-history.md").read_text().split())


def sweep(name=None):
    runs = {r["name"]: r for r in json.loads((ROOT / "docs" / "records" / "recipe_sweep_b7d79cc.json").read_text())["runs"]}
    return runs[name] if name else runs


def sweep_rank(name):
    """1 for the recipe with the highest mean of the minimums, 2 for the next, ..."""
    return sorted(sweep().values(), key=lambda r: -r["mean_min5"]).index(sweep(name)) + 1


HISTORY_CLAIMS = [
    (("twelve",), lambda: len(sweep()) == 12),
    (("highest mean of the per-seed minimums of the twelve", "tied with the peer's shape without shifts"),
     lambda: sweep_rank("tr0.05") == 1 and sweep("tr0.05")["frac_9940"] == sweep("peer_tr0")["frac_9940"]
     and all(sweep("tr0.05")["frac_9940"] > r["frac_9940"] for n, r in sweep().items() if n not in ("tr0.05", "peer_tr0"))),
    (("Label smoothing 0.1, with either peak, was the lowest of the twelve", "more than a tenth of a point below"),
     lambda: {sweep_rank("ls0.1"), sweep_rank("lr0.3_ls0.1")} == {11, 12}
     and all(sweep("base")["mean_min5"] - sweep(n)["mean_min5"] > 0.1 for n in ("ls0.1", "lr0.3_ls0.1"))),
    (("24 copies",), lambda: {len(r["min5"]) for r in sweep().values()} == {24}),
    (("the last three recipes", "the first nine"),
     lambda: [r["call"] for r in sweep().values()].count(2) == 3 and [r["call"] for r in sweep().values()].count(1) == 9),
]


@pytest.mark.parametrize("figures, check", HISTORY_CLAIMS, ids=[" / ".join(f) for f, _ in HISTORY_CLAIMS])
def test_history_states_what_the_sweep_record_shows(figures, check):
    for figure in figures:
        assert figure in history_doc(), f"docs/recipe-history.md no longer states {figure!r}"
    assert check()


def git_json(commit, path):
    try:
        return json.loads(subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True,
                                         check=True).stdout)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no git history here to read the earlier records")


def test_history_table_of_the_earlier_seed_runs_is_their_records():
    rows = re.findall(r"^\| ([0-9a-f]{7}) \| ([\d.]+) \| ([\d.]+) \| ([\w ]+) \| (\d+) of (\d+) \| ([\d.]+)% \|$",
                      (ROOT / "docs" / "recipe-history.md").read_text(), re.M)
    assert len(rows) == 3
    for commit, lr, shift, cpu, held, n, mean in rows:
        old = git_json(commit, "results/seeds.json")
        mins = [r["min_last"] for r in old["seeds"]]
        assert old["settings"]["scheduler"]["max_lr"] == float(lr) and old["settings"]["translate"] == float(shift)
        assert cpu.split()[-1] in old["device"] and [r["seed"] for r in old["seeds"]] == list(range(1, 11))
        assert sum(m >= 99.4 for m in mins) == int(held) and len(mins) == int(n)
        assert f"{sum(mins) / len(mins):.2f}" == mean


# ----------------------------------------------------------------------------- the README

def readme():
    return " ".join((ROOT / "README.md").read_text().split())


def test_readme_is_read_in_ten_minutes():
    assert len((ROOT / "README.md").read_text()) < 15000


def freeze_commit():
    """The commit that added the freeze section to docs/search-plan.md (rule 6 of the plan)."""
    out = subprocess.run(["git", "log", "--format=%H", "-S", "## Freeze", "--", "docs/search-plan.md"],
                         cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not out:
        pytest.skip("no git history here to find the freeze")
    return out[-1]


def seeds_recorded_before(commit):
    """Every seed that a results/seeds.json or results/holdout.json at or before commit held."""
    log = subprocess.run(["git", "log", "--format=%H", commit, "--", "results/seeds.json", "results/holdout.json"],
                         cwd=ROOT, capture_output=True, text=True).stdout.split()
    seen = set()
    for c in log:
        for path in ("results/seeds.json", "results/holdout.json"):
            shown = subprocess.run(["git", "show", f"{c}:{path}"], cwd=ROOT, capture_output=True, text=True)
            if shown.returncode == 0:
                seen |= {r["seed"] for r in json.loads(shown.stdout)["seeds"]}
    return seen


def before_freeze(commit, cpu):
    """Seeds of 1 to 10 at the bar in that commit's record (the recipe in the default layout)."""
    old = git_json(commit, "results/seeds.json")
    assert cpu in old["device"] and [r["seed"] for r in old["seeds"]] == list(range(1, 11))
    assert not old["settings"].get("channels_last") and old["settings"]["translate"] == seeds()["settings"]["translate"]
    return held(old)


README_CLAIMS = [
    ((f"{held(seeds())} of {len(seeds()['seeds'])} hold the bar", f"the worst {worst_margin(seeds())} test images above it"),
     lambda: [r["seed"] for r in seeds()["seeds"]] == list(range(1, 21)) and worst_margin(seeds()) > 0),
]


def test_readme_on_the_frozen_seeds_is_the_git_record():
    freeze = freeze_commit()
    assert f"frozen in commit {freeze[:7]}" in readme()
    assert subprocess.run(["git", "merge-base", "--is-ancestor", freeze, seeds()["git_commit"]], cwd=ROOT).returncode == 0
    earlier = seeds_recorded_before(freeze)
    assert "Seeds 15 to 20 had no earlier run in this repository's records" in readme()
    assert not earlier & set(range(15, 21)) and set(range(1, 15)) - earlier == {11, 12, 13, 14}
    assert "seeds 11 to 14 were run with it too, in runs that were not kept" in readme()
    for commit, cpu, name in (("5666ce9", "AMD EPYC", "AMD EPYC"), ("5b9b423", "Xeon", "an Intel Xeon")):
        assert f"on {before_freeze(commit, cpu)} of 10 on {name} (commit {commit})" in readme()


@pytest.mark.parametrize("figures, check", README_CLAIMS, ids=[" / ".join(f) for f, _ in README_CLAIMS])
def test_readme_states_what_the_records_show(figures, check):
    for figure in figures:
        assert figure in readme(), f"the README no longer states {figure!r}"
    assert check()


def test_history_on_the_held_out_seeds_under_round_two_is_that_commits_record():
    assert "(commit bd1275e), where 1 of the 4 held the bar" in history_doc()
    old = git_json("bd1275e", "results/holdout.json")
    assert [r["seed"] for r in old["seeds"]] == [111, 112, 113, 114] == [r["seed"] for r in holdout()["seeds"]]
    assert old["settings"]["translate"] == 0.1 and old["settings"]["scheduler"]["max_lr"] == 0.2
    assert sum(r["min_last"] >= 99.4 for r in old["seeds"]) == 1


def seed_mins(commit, path="results/seeds.json"):
    old = git_json(commit, path)
    return [r["seed"] for r in old["seeds"]], [r["min_last"] for r in old["seeds"]], old


def test_history_on_the_first_recipe_and_round_one_is_their_records():
    seeds_, mins, old = seed_mins("c3cbf16")
    assert "(commit c3cbf16: 5 of 5, mean of the minimums 99.43%)" in history_doc()
    assert seeds_ == [1, 2, 3, 4, 5] and all(m >= 99.4 for m in mins) and f"{sum(mins) / 5:.2f}" == "99.43"
    assert old["settings"]["max_lr"] == 0.1 and old["settings"]["translate"] == 0.1
    assert "cycle_momentum" not in json.dumps(old["settings"])  # OneCycleLR's default: the momentum cycled
    assert git_json("8489e00", "results/seeds.json")["settings"]["scheduler"]["cycle_momentum"] is False
    seeds_, mins, old = seed_mins("e421a99", "results/holdout.json")
    assert "(commit e421a99), held on 2 of 4, mean of the minimums 99.365%" in history_doc()
    assert seeds_ == [101, 102, 103, 104] and sum(m >= 99.4 for m in mins) == 2 and f"{sum(mins) / 4:.3f}" == "99.365"
    assert old["settings"]["scheduler"]["max_lr"] == 0.1


def test_history_on_the_held_out_seeds_111_114_is_their_records():
    for commit, cpu, held_, mean, text in (
            ("bd1275e", "AMD EPYC", 1, "99.38", "(commit bd1275e), where 1 of the 4 held the bar, mean of the minimums 99.38%"),
            ("3deddb1", "Xeon", 2, "99.38", "on an Intel Xeon (commit 3deddb1), where 2 of the 4 held, mean 99.38%")):
        seeds_, mins, old = seed_mins(commit, "results/holdout.json")
        assert text in history_doc()
        assert seeds_ == [111, 112, 113, 114] and cpu in old["device"]
        assert sum(m >= 99.4 for m in mins) == held_ and f"{sum(mins) / 4:.2f}" == mean
    assert git_json("3deddb1", "results/holdout.json")["settings"]["translate"] == holdout()["settings"]["translate"]
    assert "AMD EPYC" in holdout()["device"]


def test_history_on_the_lead_of_shift_0_05_is_the_sweep_record():
    lead = sweep("tr0.05")["mean_min5"] - sweep("peer_tr0")["mean_min5"]
    assert "0.0025 points, on other seeds" in history_doc() and f"{lead:.4f}" == "0.0025"
    assert sweep("tr0.05")["first_seed"] != sweep("peer_tr0")["first_seed"]


def test_readme_on_the_recipes_revisions_is_the_records():
    """Three revisions, each after test-set seeds had been seen: c3cbf16 (seeds 1-5) -> 8489e00
    (momentum fixed) -> 0d74342 (peak 0.2) -> 5b9b423 (shift 0.05, today's recipe)."""
    assert "revised three times, each time after test-set runs of seeds 1 to 5 or 1 to 10" in readme()
    first = git_json("c3cbf16", "results/seeds.json")["settings"]
    a, b, c = (git_json(k, "results/seeds.json")["settings"] for k in ("8489e00", "0d74342", "5b9b423"))
    assert first["max_lr"] == a["scheduler"]["max_lr"] == 0.1 and a["scheduler"]["cycle_momentum"] is False
    assert b["scheduler"]["max_lr"] == 0.2 != a["scheduler"]["max_lr"] and b["translate"] == a["translate"] == 0.1
    assert c["translate"] == 0.05 == seeds()["settings"]["translate"] and c["scheduler"]["max_lr"] == 0.2
    for commit, n in (("c3cbf16", 5), ("8489e00", 10), ("0d74342", 10)):
        assert seed_mins(commit)[0] == list(range(1, n + 1))


def test_the_first_recipe_was_set_with_test_seeds_1_to_5_in_view():
    """The README of 8b5ce8b says the first recipe's settings were chosen on the test set."""
    assert "The first recipe was set with seeds 1 to 5 of the test set in view" in readme()
    assert "The first recipe of Step 3 was set with seeds 1 to 5 of the test set in view" in history_doc()
    try:
        old = subprocess.run(["git", "show", "8b5ce8b:README.md"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no git history here to read the earlier README")
    assert "whose settings had been chosen, and its seeds 1 to 5 seen, on the test set" in " ".join(old.decode().split())


def search_record():
    path = ROOT / "benchmarks" / "search.json"
    if not path.is_file():
        pytest.skip("the search has not run")
    return json.loads(path.read_text())


def test_history_and_readme_on_the_search_are_its_record():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import search
    rec = search_record()
    diffs = {n: r["paired_diff"] for n, r in rec["summary"].items() if n != "present"}
    assert f"by {min(-d for d in diffs.values()):.3f} to {max(-d for d in diffs.values()):.3f} points" in history_doc()
    assert all(d < 0 for d in diffs.values()) and len(diffs) == 5
    assert all(rec["summary"][n]["at_bar"] < rec["summary"]["present"]["at_bar"] for n in diffs)
    assert "the pick is slim_low_early" in history_doc() and search.pick(rec) == "slim_low_early"
    assert "five candidates, under 6,000 parameters, all scored below the present recipe on held-out seeds 200-207" in readme()
    assert all(rec["params"][n] < 6000 for n in diffs) and rec["seeds"] == list(range(200, 208))


@pytest.mark.skipif(not (ROOT / "benchmarks" / "confirm.json").is_file(), reason="the confirmation has not run")
def test_history_and_readme_on_the_confirmation_are_its_record():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import search
    rec = confirm_record()
    name, both = search.adopted(search_record(), rec)
    assert name == rec["adopted"] == "present" and rec["pick"] == "slim_low_early" and both == rec["sixteen_seeds"]
    pick, present = both["slim_low_early"], both["present"]
    assert f"{-pick['paired_diff']:.3f} points below" in history_doc() and pick["paired_seeds"] == 16
    assert (pick["at_bar"], present["at_bar"]) == (2, 10) and rec["seeds"] == list(range(208, 216))
    said = re.search(r"held the bar on (\d+) seeds to the present recipe's (\d+)", history_doc())
    assert said and tuple(map(int, said.groups())) == (pick["at_bar"], present["at_bar"])
    said = re.search(r"the pick held the bar on (\d+), the present recipe on (\d+)", " ".join(readme().split()))
    assert said and tuple(map(int, said.groups())) == (pick["at_bar"], present["at_bar"])
    assert f"keeps its {rec['params']['present']:,} parameters" in history_doc()


def test_history_on_the_candidates_speed_is_the_speed_record():
    s = json.loads((ROOT / "results" / "speed.json").read_text())
    ref = next(m["images_per_s"] for m in s["models"] if m["name"] == "Model_3 (Step 3)")
    candidates = [m for m in s["models"] if m["name"].startswith("search: ")]
    assert "The candidates were faster" in history_doc()
    assert len(candidates) == 5 and all(m["images_per_s"] > ref for m in candidates)


# ----------------------------------------------------------------------------- the ablation

def ablation():
    path = ROOT / "benchmarks" / "ablation.json"
    if not path.is_file():
        pytest.skip("the ablation has not run")
    return json.loads(path.read_text())


def cost(name):
    """Points of the mean of the per-seed minimums lost by leaving `name` out (paired with the
    whole recipe on the same seeds)."""
    return -ablation()["summary"][name]["paired_diff"]


def within_noise(name):
    row = ablation()["summary"][name]
    return abs(row["paired_diff"]) < 2 * row["paired_se"]


def at_chance(name):
    """The epoch (from 1) from which each finished run of `name` stayed below 20%, or None."""
    out = []
    for r in ablation()["runs"][name].values():
        acc = r["test_acc"]
        out.append(next((i + 2 for i in range(len(acc) - 1, -1, -1) if acc[i] >= 20), 1) if acc[-1] < 20 else None)
    return out


def failed_on_every_seed(name):
    rec = ablation()
    return (len(rec["diverged"].get(name, [])) + len(rec["runs"].get(name, {})) == len(rec["seeds"])
            and None not in at_chance(name))


REST = ("no_schedule", "no_weight_average", "no_augmentation")  # in the order the texts rank them


def beyond_noise(name):
    row = ablation()["summary"][name]
    return abs(row["paired_diff"]) > 2 * row["paired_se"]


def test_the_ablation_is_of_step_3s_recipe_on_eight_held_out_seeds():
    rec = ablation()
    assert rec["seeds"] == list(range(200, 208)) and rec["adopted"] == "present"
    full = dict(rec["recipe_settings"]["full"]["settings"])
    record = dict(seeds()["settings"])
    for key in ("train_images", "evaluated_on"):
        full.pop(key), record.pop(key)
    assert full == record, "the ablation's whole recipe is not the one the seeds record trained"
    assert rec["recipe_settings"]["no_schedule"]["settings"]["lr"] == 0.01
    assert rec["recipe_settings"]["no_schedule"]["settings"]["schedule"] == "constant"


def test_step_3s_analysis_on_the_ablation_is_its_record():
    analysis = text_of(3, "analysis")
    assert "on 8 held-out seeds" in analysis and len(ablation()["seeds"]) == 8
    assert "without batch norm all 8 seeds fail" in analysis and failed_on_every_seed("no_batch_norm")
    assert f"a constant 0.01 instead of the one-cycle schedule costs {sync_docs.fixed(cost('no_schedule'))} points" in analysis
    assert f"no weight average {sync_docs.fixed(cost('no_weight_average'))}, beyond noise" in analysis
    assert beyond_noise("no_schedule") and beyond_noise("no_weight_average")
    assert cost(REST[0]) > cost(REST[1]) > cost(REST[2]) > 0 > cost("no_dropout")
    assert (f"rotations and shifts ({sync_docs.fixed(cost('no_augmentation'))}) and dropout (without it the mean rises "
            f"{sync_docs.fixed(-cost('no_dropout'))}), added against the gap, gain nothing beyond noise") in analysis
    assert within_noise("no_augmentation") and cost("no_augmentation") > 0
    assert cost("no_dropout") < 0 and within_noise("no_dropout")
    assert "against the widening gap" in text_of(3, "target")  # the reason the Target gave for both
    assert "(50,000 training images)" in analysis
    assert confirm_record()["recipe_settings"]["present"]["settings"]["train_images"] == 50000


def test_readme_on_the_ablation_is_its_record():
    abl, text = ablation(), readme()
    finished = abl["runs"]["no_batch_norm"].values()
    assert f"loss became NaN on {len(abl['diverged']['no_batch_norm'])} seeds" in text
    chance = {r["test_acc"][-1] for r in finished}
    assert f"on the other {len(finished)} its accuracy fell to {chance.pop():.2f}%, about chance" in text and not chance
    assert f"in epochs {min(at_chance('no_batch_norm'))} to {max(at_chance('no_batch_norm'))}" in text
    full = abl["recipe_settings"]["full"]["settings"]
    assert "(the learning rate peaks at 0.2 in epoch 5)" in text and full["lr"] == 0.2
    assert full["pct_start"] * full["epochs"] == 4.5 and max(at_chance("no_batch_norm")) <= 5
    assert "Step 2 trains the same plain layers at a constant 0.01" in text
    assert rec(2)["settings"]["lr"] == 0.01 and rec(2)["settings"]["schedule"] == "constant"
    assert abl["params"]["no_batch_norm"] == rec(2)["params"]
    s = abl["summary"]
    assert (f"A constant 0.01 instead of the one-cycle schedule costs {sync_docs.fixed(cost('no_schedule'))} points "
            f"({s['no_schedule']['at_bar']} of 8 seeds at the bar)") in text
    assert (f"no weight average {sync_docs.fixed(cost('no_weight_average'))} ({s['no_weight_average']['at_bar']} of 8), "
            "each more than twice its standard error") in text
    assert beyond_noise("no_schedule") and beyond_noise("no_weight_average")
    assert (f"Without rotations and shifts the mean drops by {sync_docs.fixed(cost('no_augmentation'))} +- "
            f"{sync_docs.fixed(s['no_augmentation']['paired_se'])} points, within noise, though {s['no_augmentation']['at_bar']} "
            f"of 8 seeds hold the bar against {s['full']['at_bar']}") in text
    assert within_noise("no_augmentation") and cost("no_augmentation") > 0
    assert (f"Without dropout it rises by {sync_docs.fixed(-cost('no_dropout'))} +- {sync_docs.fixed(s['no_dropout']['paired_se'])} points "
            f"and {s['no_dropout']['at_bar']} of 8 seeds hold the bar") in text
    assert within_noise("no_dropout") and cost("no_dropout") < 0
    assert "It stays at 0.05, as frozen with the recipe" in text
    assert full["dropout"] == seeds()["settings"]["dropout"] == 0.05
