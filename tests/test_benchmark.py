"""The speed benchmark and the finished pipeline comparison run end to end (tiny sizes) and
write what the documents show."""
import json
import sys

import pytest

import series
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "experiments" / "pipeline"))
import pipeline  # noqa: E402
import speed  # noqa: E402


def test_pipeline_comparison_writes_both_rates_and_their_ratio(tmp_path, capsys):
    out = tmp_path / "benchmark.json"
    assert pipeline.main(["--batches", "3", "--repeats", "1", "--workers", "0", "--device", "cpu",
                          "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["a_images_per_s"] > 0 and result["b_images_per_s"] > 0
    assert abs(result["ratio"] - result["b_images_per_s"] / result["a_images_per_s"]) < 1e-9
    printed = capsys.readouterr().out
    assert f"ratio b/a: {result['ratio']:.2f}x" in printed and "hardware:" in printed


def test_speed_benchmark_times_each_steps_model_under_its_recipe(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert speed.main(["--steps", "2", "--repeats", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [m["name"] for m in result["models"]] == [f"Model_{s} (Step {s})" for s in series.MODELS]
    assert all(m["images_per_s"] > 0 and len(m["seconds"]) == 1 for m in result["models"])
    rows = {m["name"]: m for m in result["models"]}
    assert rows["Model_3 (Step 3)"]["channels_last"] is series.STEP3["channels_last"]
    assert rows["Model_1 (Step 1)"]["params"] == 20722 and result["threads"] == 1
    assert "images/s" in capsys.readouterr().out


sys.path.insert(0, str(ROOT / "benchmarks"))
import ladder  # noqa: E402


def test_ladder_runs_each_rung_and_writes_its_whole_record(tmp_path):
    argv = ["--seeds", "200", "--epochs", "1", "--train-subset", "512", "--runs", str(tmp_path / "runs"),
            "--record", str(tmp_path / "ladder.json")]
    assert ladder.main(argv) == 0
    rec = json.loads((tmp_path / "ladder.json").read_text())
    assert rec["recipes"] == ["step1", "step2", "step2_bn", "whole"] and rec["seeds"] == [200]
    assert rec["params"] == {"step1": 20722, "step2": 7636, "step2_bn": 7722, "whole": 7722}
    run = rec["runs"]["step2_bn"]["200"]
    assert len(run["correct"]) == 1 and {"train_acc", "test_acc"} <= set(run["end"])
    assert rec["recipe_settings"]["step2_bn"]["settings"]["batch_norm"] is True
    assert rec["recipe_settings"]["step2"]["settings"]["batch_norm"] is False
    search = json.loads((ROOT / "experiments" / "search" / "search.json").read_text())
    assert rec["runs"]["whole"]["200"]["correct"] == search["runs"]["present"]["200"]["correct"]
    assert (tmp_path / "ladder.png").is_file()
    stamp = (tmp_path / "runs" / "step1" / "seed_200.json").stat().st_mtime
    assert ladder.main(argv) == 0  # every run is there: none runs again
    assert (tmp_path / "runs" / "step1" / "seed_200.json").stat().st_mtime == stamp


def test_ladder_smoke_options_cannot_write_over_the_record(capsys):
    with pytest.raises(SystemExit):
        ladder.main(["--epochs", "1"])
    assert "smoke checks" in capsys.readouterr().err
