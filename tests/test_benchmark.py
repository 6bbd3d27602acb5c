"""The pipeline benchmark runs end to end (tiny sizes) and records what the README shows."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import pipeline  # noqa: E402


def test_benchmark_writes_both_rates_and_their_ratio(tmp_path, capsys):
    out = tmp_path / "benchmark.json"
    assert pipeline.main(["--batches", "3", "--repeats", "1", "--workers", "0", "--device", "cpu",
                          "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["a_images_per_s"] > 0 and result["b_images_per_s"] > 0
    assert abs(result["ratio"] - result["b_images_per_s"] / result["a_images_per_s"]) < 1e-9
    printed = capsys.readouterr().out
    assert f"ratio b/a: {result['ratio']:.2f}x" in printed and "hardware:" in printed


import speed  # noqa: E402


def test_speed_benchmark_times_every_model_it_is_given(tmp_path, capsys):
    out = tmp_path / "speed.json"
    names = "Model_1 (Step 1),Model_3 (Step 3),Model_3 (before the freeze),search: stages_4k_low_early"
    assert speed.main(["--steps", "2", "--repeats", "1", "--only", names, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [m["name"] for m in result["models"]] == names.split(",")
    assert all(m["images_per_s"] > 0 and len(m["seconds"]) == 1 for m in result["models"])
    rows = {m["name"]: m for m in result["models"]}
    assert rows["search: stages_4k_low_early"]["batch_size"] == 64 and rows["search: stages_4k_low_early"]["channels_last"]
    assert rows["Model_3 (Step 3)"]["channels_last"] and not rows["Model_3 (before the freeze)"]["channels_last"]
    assert result["threads"] == 1 and "search: present" not in speed.contenders()  # it is Step 3's row
    assert "images/s" in capsys.readouterr().out


def test_steps_1_and_2_are_timed_with_their_notebooks_recipe():
    from test_search import notebook_parameters
    for name in ("Step1_Skeleton.ipynb", "Step2_LightModel.ipynb"):
        p = notebook_parameters(name)
        assert speed.PLAIN == dict(epochs=p["epochs"], batch_size=p["batch_size"], optimizer="sgd", lr=p["lr"],
                                   momentum=p["momentum"], nesterov=False, weight_decay=0.0, schedule="constant")
