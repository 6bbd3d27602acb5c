"""The finished held-out search (experiments/search/search.py): its nets, its recipes against
series.py and the plan, its rules, a smoke run of a plan, and its committed records."""
import json
import re
import sys

import pytest
import torch

import model
import series
import sync_docs
import utils
from conftest import ROOT

sys.path.insert(0, str(ROOT / "experiments" / "search"))
import search  # noqa: E402


def test_model_3_as_a_list_is_model_3_weight_for_weight():
    torch.manual_seed(5)
    listed = search.build(search.ARCHS["model_3"], dropout=0.05)
    torch.manual_seed(5)
    real = model.Model_3(dropout=0.05)
    assert [type(m) for m in listed.modules()][1:] == [type(m) for m in real.modules()][1:]
    a, b = listed.state_dict(), real.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_the_present_recipe_is_step_3s():
    assert search.RECIPES["present"] == ("model_3", series.recipe(3))


def test_every_candidate_is_a_valid_recipe_under_6000_parameters_seeing_the_whole_digit():
    for name, (arch, recipe) in search.RECIPES.items():
        utils.check_recipe(recipe)
        net = search.build(search.ARCHS[arch], dropout=recipe["dropout"])
        assert utils.receptive_field(net)[-1]["rf"] >= 28, name
        if name != "present":
            assert utils.count_params(net) < 6000, name
    assert len(search.RECIPES) - 1 >= 4


def test_the_plan_names_every_recipe_with_its_parameter_count():
    plan = (ROOT / "docs" / "search-plan.md").read_text()
    rows = dict(re.findall(r"^\| (\w+) \| [^|]+ \| ([\d,]+) \|", plan, re.M))
    assert list(rows) == list(search.RECIPES)
    for name, (arch, recipe) in search.RECIPES.items():
        assert int(rows[name].replace(",", "")) == utils.count_params(search.build(search.ARCHS[arch])), name
    assert "seeds 200 to 207" in plan and "seeds 208 to 215" in plan
    assert search.SEARCH_SEEDS == list(range(200, 208)) and search.CONFIRM_SEEDS == list(range(208, 216))


def test_each_ablation_variant_leaves_one_ingredient_out():
    full_arch, full, bn = search.ablated("present", "full")
    assert (full_arch, full, bn) == (*search.RECIPES["present"], True)
    changed = {}
    for leave_out in search.ABLATION[1:]:
        arch, recipe, bn = search.ablated("present", leave_out)
        utils.check_recipe(recipe)
        changed[leave_out] = {k for k in set(recipe) | set(full) if recipe.get(k) != full.get(k)} | ({"bn"} if not bn else set())
    assert changed == {"no_batch_norm": {"bn"}, "no_dropout": {"dropout"},
                       "no_augmentation": {"degrees", "translate"},
                       "no_schedule": {"schedule", "lr", "pct_start", "final_div_factor"},
                       "no_weight_average": {"ema_decay"}}
    assert search.ablated("present", "no_schedule")[1]["lr"] == 0.01
    with pytest.raises(ValueError, match="unknown ingredient"):
        search.ablated("present", "no_luck")


def runs_of(lows):
    """Synthetic run records: a recipe's seeds with these minimum counts of correct digits."""
    return {name: {str(200 + i): dict(correct=[9000] * 10 + [low] * 5) for i, low in enumerate(values)}
            for name, values in lows.items()}


def test_summary_is_the_mean_of_minimums_with_a_paired_difference_and_its_error():
    s = search.summarize(runs_of({"present": [9940, 9930, 9950, 9920], "cand": [9945, 9940, 9950, 9930]}))
    assert s["present"]["mean_min"] == pytest.approx(99.35) and s["present"]["at_bar"] == 2
    assert s["cand"]["paired_diff"] == pytest.approx(0.0625) and s["cand"]["worst"] == pytest.approx(99.30)
    # the differences 5, 10, 0, 10 digits: sd 4.79, se 2.39 digits
    assert s["cand"]["paired_se"] == pytest.approx(0.0239, abs=1e-4) and s["cand"]["at_bar"] == 3


def test_the_pick_and_the_adoption_follow_the_plan():
    search_rec = dict(summary=search.summarize(runs_of({"present": [9940] * 8, "a": [9941] * 8, "b": [9942] * 8})),
                      params={"present": 7722, "a": 3000, "b": 5000},
                      runs=runs_of({"present": [9940] * 8, "a": [9941] * 8, "b": [9942] * 8}))
    assert search.pick(search_rec) == "b"
    confirm = dict(pick="b", runs={n: {str(208 + i): r for i, r in enumerate(v.values())}
                                   for n, v in runs_of({"b": [9935] * 8, "present": [9945] * 8}).items()})
    name, both = search.adopted(search_rec, confirm)
    assert name == "present" and both["b"]["seeds"] == list(range(200, 216))
    confirm["runs"] = {n: {str(208 + i): r for i, r in enumerate(v.values())}
                       for n, v in runs_of({"b": [9940] * 8, "present": [9940] * 8}).items()}
    assert search.adopted(search_rec, confirm)[0] == "b", "no lower mean, no fewer seeds at the bar"


def test_a_plan_runs_resumes_and_writes_its_whole_record(tmp_path, monkeypatch, mnist):
    monkeypatch.setattr(search, "SEARCH_SEEDS", [200, 201])  # each run's child process sees the same RECIPES
    kw = dict(jobs=2, train_subset=256, runs_dir=tmp_path / "runs", records_dir=tmp_path / "rec", epochs=1,
              log=lambda s: None)
    rec = search.run_plan("search", **kw)
    assert set(rec["runs"]) == set(search.RECIPES) and set(rec["runs"]["present"]) == {"200", "201"}
    assert rec["held_out_images"] == 10000 and rec["recipe_settings"]["present"]["settings"]["channels_last"] is True
    assert rec["probes"]["present"]["spec"]["model"] == "Model_3"
    assert rec["summary"]["stages_4k_low_early"]["paired_seeds"] == 2
    run = json.loads((tmp_path / "runs" / "search" / "present" / "seed_200.json").read_text())
    assert run["settings"]["evaluated_on"] == "last 10,000 training images (held out)"
    assert run["correct"] == [round(a * 100) for a in run["history"]["test_acc"]]
    stamp = (tmp_path / "runs" / "search" / "present" / "seed_200.json").stat().st_mtime
    search.run_plan("search", **kw)  # everything is there: nothing runs again
    assert (tmp_path / "runs" / "search" / "present" / "seed_200.json").stat().st_mtime == stamp


def test_smoke_options_cannot_write_over_the_records(capsys):
    with pytest.raises(SystemExit):
        search.main(["search", "--epochs", "1"])
    assert "smoke checks" in capsys.readouterr().err


@pytest.mark.parametrize("plan", ["search", "confirm", "ablation"])
def test_a_committed_record_is_its_plan_whole(plan):
    """experiments/search/PLAN.json: the plan's recipes on the plan's seeds, every run of 15
    epochs, full-size held-out scoring, and a summary that its own runs give again."""
    rec = json.loads((ROOT / "experiments" / "search" / f"{plan}.json").read_text())
    seeds = {"search": search.SEARCH_SEEDS, "confirm": search.CONFIRM_SEEDS, "ablation": search.SEARCH_SEEDS}[plan]
    assert rec["plan"] == plan and rec["seeds"] == seeds and rec["held_out_images"] == 10000
    if plan == "search":
        assert rec["recipes"] == list(search.RECIPES)
    for name in rec["recipes"]:
        runs = rec["runs"].get(name, {})
        assert sorted(map(int, runs)) == seeds or name in rec["diverged"], f"{name}: runs missing"
        assert all(len(r["correct"]) == 15 for r in runs.values())
        assert rec["recipe_settings"][name]["settings"]["train_images"] == 50000
    again = search.summarize({n: {s: dict(correct=r["correct"]) for s, r in by.items()} for n, by in rec["runs"].items()},
                             baseline="full" if plan == "ablation" else "present")
    assert again == rec["summary"]
    if plan == "confirm":
        assert rec["pick"] == search.pick(json.loads((ROOT / "experiments" / "search" / "search.json").read_text()))


def test_the_ablation_table_reports_diverged_seeds_beside_the_others():
    row = dict(seeds=[200, 201], mean_min=99.4, at_bar=1, worst=99.3)
    rec = dict(plan="ablation", seeds=[200, 201, 202], recipes=["full", "no_batch_norm", "no_schedule"],
               recipe_settings={"full": dict(settings=dict(train_images=50000))}, held_out_images=10000, window=5,
               device="cpu", threads=1, target=99.4, params=dict(full=7722, no_batch_norm=7636, no_schedule=7722),
               diverged=dict(no_batch_norm=[202], no_schedule=[200, 201, 202]),
               summary=dict(full=dict(row, seeds=[200, 201, 202]),
                            no_batch_norm=dict(row, paired_diff=-0.1, paired_se=0.05, paired_seeds=2)))
    table = sync_docs.plan_table(rec)
    assert ("| no batch norm (plain convs with biases) | 7,636 | diverged on seed 202; the other 2: 99.400% | "
            "-0.100 +- 0.050 pt (on those 2) | 1 / 3 |") in table  # a diverged seed is one not at the bar
    assert "| a constant learning rate of 0.01, no schedule | 7,722 | diverged on seeds 200, 201, 202 | | | |" in table


def test_plan_figures_round_halves_as_by_hand():
    assert f"{0.0375:.3f}" == "0.037"  # what plain formatting gives: the float is just below the half
    assert sync_docs.fixed(0.0375) == "0.038" and sync_docs.fixed(-0.0375, sign=True) == "-0.038"
    assert sync_docs.fixed(0.02, sign=True) == "+0.020" and sync_docs.fixed(99.37375) == "99.374"
