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
