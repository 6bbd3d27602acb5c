"""Records and checkpoints: round trips, atomic writes, clear errors, the probe that vouches
for a record, and the fingerprint of notebook code."""
import json
import re
import urllib.request
from pathlib import Path

import pytest
import torch

import model as models
import records
import report
import series
import sync_docs
import utils


def test_results_json_round_trip(tmp_path, small_loaders):
    train, test = small_loaders
    net = models.Model_2()
    history = utils.fit(net, train, test, torch.optim.SGD(net.parameters(), lr=0.01), epochs=1,
                        progress=False, log=lambda s: None)
    record = records.save_run(net, history, step=2, seed=1, device="cpu", wall_seconds=3.21,
                              settings=series.recipe(2, epochs=1), results_dir=tmp_path)
    loaded = records.load_record(tmp_path / "step2.json")
    assert loaded == json.loads(json.dumps(record))
    assert loaded["model"] == "Model_2" and loaded["params"] == utils.count_params(net)
    assert loaded["receptive_field"] == 28 and loaded["epochs"] == 1
    assert loaded["history"]["test_acc"] == history["test_acc"]
    assert (tmp_path / "Model_2.pt").is_file()


def test_checkpoint_reload_gives_the_same_test_accuracy(tmp_path, small_loaders):
    train, test = small_loaders
    utils.set_seed(3)
    net = models.Model_3()
    utils.fit(net, train, test, torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9), epochs=1,
              progress=False, log=lambda s: None)
    before = utils.evaluate(net, test)
    records.save_weights(net, tmp_path / "Model_3.pt")
    fresh = records.load_weights(models.Model_3(), tmp_path / "Model_3.pt")
    assert utils.evaluate(fresh, test) == before


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "step3.json"
    records.write_json({"model": "Model_3", "params": 1, "history": {}}, path)

    def broken(tmp):
        open(tmp, "w").write("{half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        records.atomic_write(path, broken)
    assert json.loads(path.read_text())["model"] == "Model_3"
    assert [p.name for p in tmp_path.iterdir()] == ["step3.json"]


def test_missing_results_file_says_to_run_the_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the notebook first"):
        records.load_record(tmp_path / "step1.json")


def test_foreign_json_is_not_taken_for_a_results_file(tmp_path):
    path = tmp_path / "step1.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="lacks model, params, history"):
        records.load_record(path)


def test_weights_load_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"weights": object()}, path)
    with pytest.raises(Exception, match="[Ww]eights only load failed|weights_only"):
        records.load_weights(models.Model_3(), path)


def test_result_markdown_reports_the_last_five_epochs_and_both_targets():
    history = {k: [] for k in utils.HISTORY_KEYS}
    for e, acc in enumerate([98.0, 99.0, 99.41, 99.45, 99.40, 99.50, 99.43], start=1):
        for k, v in dict(epoch=e, lr=0.1, train_loss=0.1, train_acc=98.0 + e / 10, test_loss=0.02,
                         test_acc=acc, seconds=1.0).items():
            history[k].append(v)
    record = dict(model="Model_1", params=6000, receptive_field=28, epochs=7, seed=1, wall_seconds=9.0,
                  device="cpu", threads=2, history=history, settings={},
                  train_test=dict(train_acc=99.7, test_acc=99.43))
    text = report.result_markdown(record)
    assert "best 99.50% (epoch 6)" in text and "best 98.70% (epoch 7)" in text
    assert "99.00, 99.41, 99.45, 99.40, 99.50" not in text
    assert "99.41, 99.45, 99.40, 99.50, 99.43 (%), min 99.40%" in text
    assert "train 99.70%, test 99.43% (gap +0.27 pt)" in text
    assert "This step's target, each of the last 5 epochs at or above 99.0%: met" in text
    assert "The assignment's bar, >= 99.4% in each of the last 5 epochs: met in this run" in text
    assert "7 epochs, seed 1, on cpu, 2 CPU threads: 7 s in the epochs, 9 s with the final scoring" in text
    history["test_acc"][-1] = 99.39
    assert "bar, >= 99.4% in each of the last 5 epochs: not met in this run" in report.result_markdown(record)
    history["test_acc"][-1] = 98.99
    assert "at or above 99.0%: not met" in report.result_markdown(record)
    step3 = dict(record, model="Model_3", settings=dict(degrees=7.0, dropout=0.05, ema_decay=0.998))
    text = report.result_markdown(step3)
    assert "This step's target is the assignment's bar" in text
    assert "(augmented digits, dropout on, the live weights, not their average)" in text


def test_record_keeps_its_probe_and_where_it_ran(tmp_path, small_loaders):
    train, test = small_loaders
    net = models.Model_2()
    history = utils.fit(net, train, test, torch.optim.SGD(net.parameters(), lr=0.01), epochs=1,
                        progress=False, log=lambda s: None)
    rec = records.make_record(net, history, seed=1, device="cpu", wall_seconds=1.0, settings=series.recipe(2, epochs=1))
    assert rec["probe"]["spec"]["model"] == "Model_2" and rec["probe"]["spec"]["recipe"]["epochs"] == 1
    assert len(rec["probe"]["outcome"]["train_loss"]) == 1 and records.probe_differs(rec["probe"]) == ""
    assert rec["torch"] == torch.__version__ and rec["threads"] == torch.get_num_threads()
    assert rec["git_commit"] is None or len(rec["git_commit"]) == 40


@pytest.fixture
def fresh_probes(monkeypatch):
    monkeypatch.setattr(records, "_PROBES", {})


def short_probe():
    return records.probe("Model_3", series.recipe(3, epochs=2))


def test_a_probe_does_not_see_the_order_of_float_sums(fresh_probes, monkeypatch):
    kept = short_probe()
    records._PROBES.clear()
    monkeypatch.setattr(records, "PROBE_THREADS", 2)  # other threads, other order of the sums
    assert records.probe_differs(kept) == ""


@pytest.mark.parametrize("change", ["shift", "rotation", "loop", "schedule"])
def test_a_probe_sees_a_change_to_what_the_code_computes(change, fresh_probes, monkeypatch):
    kept = short_probe()
    records._PROBES.clear()
    if change in ("shift", "rotation"):
        affine, (d, t) = utils.random_affine, dict(shift=(1.0, 1.1), rotation=(1.1, 1.0))[change]
        monkeypatch.setattr(utils, "random_affine", lambda x, degrees, translate, generator, scale:
                            affine(x, degrees * d, translate * t, generator, scale))
    elif change == "loop":
        step = utils.train_step
        monkeypatch.setattr(utils, "train_step", lambda model, x, y, *a: step(model, x.flip(-1), y, *a))
    else:
        make = utils.make_optimizer
        monkeypatch.setattr(utils, "make_optimizer", lambda model, recipe, steps:
                            make(model, dict(recipe, pct_start=0.5), steps))
    why = records.probe_differs(kept)
    assert why and "kept" in why and "now" in why


SOURCE = '''"""A module."""
import math

TARGET = 99.4  # the bar


def area(r):
    """Area of a circle."""
    return math.pi * r ** 2
'''


def test_fingerprint_ignores_comments_docstrings_and_layout():
    same = (SOURCE.replace("# the bar", "# the bar, in %")
            .replace('"""Area of a circle."""', '"""The area of a circle of radius r."""')
            .replace("    return math.pi * r ** 2", "    # pi r squared\n    return (math.pi\n            * r ** 2)")
            + "\n# a comment at the end\n")
    assert records.fingerprint(same) == records.fingerprint(SOURCE)


@pytest.mark.parametrize("change", [("99.4", "99.5"), ("r ** 2", "r ** 3"), ("def area(r)", "def area(radius)"),
                                    ("TARGET = 99.4  # the bar", "TARGET = 99.4\n_UNUSED = 1")])
def test_fingerprint_changes_with_what_the_code_does(change):
    assert records.fingerprint(SOURCE.replace(*change)) != records.fingerprint(SOURCE)


def test_a_function_left_with_only_its_docstring_still_has_a_body():
    assert records.fingerprint('def f():\n    """Nothing."""\n') == records.fingerprint("def f():\n    pass\n")


def test_changes_pair_seeds_and_split_the_minimum_into_level_and_span():
    # two seeds, five epochs, 100 digits: after - before, per seed, then mean and standard error
    runs = {"a": {"1": {"correct": [90, 92, 91, 93, 92]}, "2": {"correct": [80, 85, 85, 85, 85]}},
            "b": {"1": {"correct": [95, 95, 96, 95, 95]}, "2": {"correct": [86, 86, 86, 86, 86]}, "3": {"correct": [1] * 5}}}
    (row,) = report.changes(dict(plan="ladder", held_out_images=100, runs=runs), [("a", "b")])
    assert row["seeds"] == 2, "seed 3 ran only after the change: nothing to pair it with"
    assert row["minimum"] == pytest.approx((5.5, 0.5))      # +5 and +6 points
    assert row["level"] == pytest.approx((2.8, 0.8))        # 91.6 -> 95.2 and 84 -> 86
    assert row["span"] == pytest.approx((-3.5, 1.5))        # 3 -> 1 and 5 -> 0


@pytest.mark.parametrize("path", sorted(series.EVIDENCE.values()))
def test_changes_agree_with_the_records_own_summary(path):
    rec = records.read_json(path)
    base = {"ablation": "full", "ladder": None}[rec["plan"]]
    pairs = rec["pairs"] if base is None else [(base, n) for n in rec["recipes"] if n != base]
    for row in report.changes(rec, pairs):
        s = rec["summary"][row["after"]]
        assert row["minimum"] == pytest.approx((s["paired_diff"], s["paired_se"]), abs=1e-9)
    table = report.format_changes(rec, pairs)
    assert len(table.splitlines()) == 2 + len(pairs)


def test_evidence_is_read_here_or_fetched_from_the_named_copy(tmp_path, monkeypatch):
    here = records.evidence("ladder")
    assert here["plan"] == "ladder" and here == records.read_json(series.EVIDENCE["ladder"])
    with pytest.raises(records.RecordError, match=r"benchmarks/ladder.json is not in .*set `repo`"):
        records.evidence("ladder", "OWNER/REPO", root=tmp_path)
    fetched = []

    def fetch(url, path):
        fetched.append(url)
        Path(path).write_text(json.dumps({"plan": "ablation"}))

    monkeypatch.setattr(urllib.request, "urlretrieve", fetch)
    assert records.evidence("ablation", "octo/s7", root=tmp_path) == {"plan": "ablation"}
    assert fetched == ["https://raw.githubusercontent.com/octo/s7/main/experiments/search/ablation.json"]


def test_series_time_names_the_steps_re_run_after_it(tmp_path):
    (tmp_path / "results").mkdir()
    series_ = dict(git_commit="a" * 40, device="CPU", threads=2, total_seconds=600.0,
                   notebooks={"1": 200.0, "2": 150.0, "3": 250.0})
    (tmp_path / "results" / "series.json").write_text(json.dumps(series_))
    for k in "123":
        (tmp_path / "results" / f"step{k}.json").write_text(json.dumps(dict(git_commit="a" * 40)))
    same = sync_docs.performance(tmp_path)
    assert re.findall(r"commit ([0-9a-f]{7})", same) == ["aaaaaaa"]
    for k in "23":
        (tmp_path / "results" / f"step{k}.json").write_text(json.dumps(dict(git_commit="b" * 40)))
    later = sync_docs.performance(tmp_path)
    assert re.findall(r"commit ([0-9a-f]{7})", later) == ["aaaaaaa", "bbbbbbb"]
    assert "2 and 3" in later and "1 and" not in later
