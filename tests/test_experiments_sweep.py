"""The finished recipe sweep (experiments/recipe_sweep/recipe_sweep.py): its grouped net is K separate nets, it writes its
whole record itself, and the historical record of its first use names the code that ran."""
import hashlib
import json
import subprocess
import sys

import pytest
import torch

import model
import records
import utils
from conftest import ROOT

sys.path.insert(0, str(ROOT / "experiments" / "recipe_sweep"))
import recipe_sweep  # noqa: E402

HISTORY = ROOT / "experiments" / "recipe_sweep" / "recipe_sweep_b7d79cc.json"


def history():
    return json.loads(HISTORY.read_text())


def split(grouped_state, k, K):
    """Group k's slice of every tensor of a grouped net's state."""
    return {name: (t if t.dim() == 0 else t[k * t.shape[0] // K:(k + 1) * t.shape[0] // K])
            for name, t in grouped_state.items()}


def test_grouped_net_computes_k_separate_nets():
    torch.manual_seed(0)
    K = 3
    grouped = recipe_sweep.build(recipe_sweep.M3, K, dropout=0.05).eval()
    x = torch.randn(4, K, 28, 28)  # (N, K, 28, 28): channel k is net k's input
    out = grouped(x).view(4, K, 10)
    for k in range(K):
        single = recipe_sweep.build(recipe_sweep.M3, 1, dropout=0.05).eval()
        single.load_state_dict(split(grouped.state_dict(), k, K))
        assert torch.allclose(out[:, k], single(x[:, k:k + 1]).view(4, 10), atol=1e-5)


def test_grouped_net_gradients_stay_within_each_group():
    torch.manual_seed(0)
    K = 2
    grouped = recipe_sweep.build(recipe_sweep.M3, K)
    x = torch.randn(8, K, 28, 28)
    out = grouped(x).view(8, K, 10)
    out[:, 0].sum().backward()  # a loss of net 0 alone
    for p in grouped.parameters():
        assert p.grad[p.shape[0] // K:].abs().max() == 0  # net 1's slice is untouched


def test_grouped_net_has_model_3s_parameter_count():
    assert recipe_sweep.params_per_model(recipe_sweep.M3) == sum(p.numel() for p in model.Model_3().parameters())


def test_every_sweep_recipe_is_a_valid_utils_recipe():
    for cfg in recipe_sweep.CONFIGS:
        utils.check_recipe(cfg["recipe"])
    assert [c["name"] for c in recipe_sweep.CONFIGS][:3] == ["base", "ls0.1", "m3pad"], "seeds follow the order"


def test_sweep_smoke_run_writes_its_whole_record(tmp_path, mnist):
    assert recipe_sweep.main(["--out", str(tmp_path), "--recipes", "base,peer_own", "--copies", "2",
                              "--epochs", "1", "--smoke"]) == 0
    rec = json.loads((tmp_path / "recipe_sweep.json").read_text())
    assert rec["script_fingerprint"] == records.fingerprint(ROOT / "experiments" / "recipe_sweep" / "recipe_sweep.py")
    assert rec["held_out_images"] == 1000 and rec["window"] == 5 and rec["target"] == 99.4
    runs = {r["name"]: r for r in rec["runs"]}
    assert set(runs) == {"base", "peer_own"}
    base = runs["base"]
    assert base["copies"] == 2 and base["first_seed"] == 7000 and base["recipe"]["epochs"] == 1
    assert len(base["correct"]) == 2 and len(base["correct"][0]) == 1
    assert base["min5"] == [n[0] / 10 for n in base["correct"]]  # 1,000 held-out digits: steps of 0.1%


@pytest.mark.parametrize("argv, message", [
    (["--recipes", "base,nope"], "unknown recipe"),
    (["--part", "4/4"], "--part must be W/N"),
    (["--epochs", "16"], "--epochs between 1 and 15"),
])
def test_sweep_bad_arguments_are_clear_errors(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit):
        recipe_sweep.parse_args(["--out", str(tmp_path)] + argv)
    assert message in capsys.readouterr().err


def test_historical_sweep_record_names_the_script_that_ran():
    rec = history()
    try:  # the script as it ran is kept in git at code_commit
        blob = subprocess.run(["git", "show", f"{rec['code_commit']}:{rec['code']}"], cwd=ROOT,
                              capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no git history here to read the script as it ran")
    assert hashlib.sha256(blob).hexdigest() == rec["code_sha256_at_commit"]


def test_historical_sweep_record_holds_every_seed_of_every_recipe():
    rec = history()
    for run in rec["runs"]:
        mins = run["min5"]
        assert len(mins) == rec["seeds_per_recipe"], run["name"]
        assert abs(sum(mins) / len(mins) - run["mean_min5"]) < 1e-3, run["name"]
        assert abs(run["worst"] - min(mins)) < 1e-3
        assert round(run["frac_9940"] * len(mins)) == sum(m >= rec["target"] - 1e-9 for m in mins)
