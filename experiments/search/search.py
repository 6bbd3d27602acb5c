"""History: a finished experiment, kept runnable (its plans are done; their records lie
beside this file).

Step 3 recipes compared on held-out digits, one CPU process per run: the pre-declared search
for a smaller Model_3, its confirmation, and the ablation of the adopted recipe
(docs/search-plan.md states the candidates, the seeds and the rules before any of them ran).

    python experiments/search/search.py search      # every candidate and the present recipe, seeds 200-207
    python experiments/search/search.py confirm     # the search's pick and the present recipe, seeds 208-215
    python experiments/search/search.py ablation    # the adopted recipe, each ingredient left out, seeds 200-207
    python experiments/search/search.py list        # the recipes: parameters, receptive field, settings

Every run trains as the Step 3 notebook does, with utils.py's loaders (holdout=10000: train on
the first 50,000 training images, score the last 10,000 after every epoch), make_optimizer,
make_ema and fit, and is judged by its minimum held-out accuracy over the last series.WINDOW
epochs.  Runs go two at a time (--jobs), one CPU thread each, each in a process of its own;
each writes runs/search/NAME/seed_S.json when it ends, so a plan stopped midway goes on where
it stopped.  When every run of a plan is there, experiments/search/PLAN.json is written whole from
them: the plan, the code that ran, every run's held-out accuracy per epoch and the summary.
"""
import argparse
import inspect
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import model  # noqa: E402
import plots  # noqa: E402
import records  # noqa: E402
import report  # noqa: E402
import series  # noqa: E402
import utils  # noqa: E402

HOLDOUT = 10000
RUNS = ROOT / "runs" / "search"  # one file per run, so that a plan stopped midway goes on
RECORDS = Path(__file__).resolve().parent  # where each plan's record is written


# ----------------------------------------------------------------------------- the nets

def conv(c_out, k=3, pad=0, drop=False):
    """One model.ConvBlock of an architecture: c_out channels, a k x k kernel, `pad` pixels of
    zero padding, and the recipe's dropout after it if drop."""
    return (c_out, k, pad, drop)


def same(c_out, drop=False):
    """A 3x3 ConvBlock padded to keep its map's size."""
    return conv(c_out, 3, 1, drop)


POOL = "pool"  # a 2x2 max-pool

def arch_of(net):
    """The architecture list of a model of model.py (its ConvBlocks and pools, up to the head)."""
    arch = []
    for layer in net:
        if isinstance(layer, nn.MaxPool2d):
            arch.append(POOL)
        elif isinstance(layer, model.ConvBlock):
            c = layer[0]
            arch.append(conv(c.out_channels, c.kernel_size[0], c.padding[0],
                             any(isinstance(m, nn.Dropout) for m in layer)))
        elif isinstance(layer, nn.AdaptiveAvgPool2d):
            break
    return arch


ARCHS = {
    "model_3": arch_of(model.Model_3()),  # build(ARCHS["model_3"]) is Model_3, weight for weight
    # Model_3 without its third conv at full resolution (half its multiply-adds), block 2 as before
    "slim": [conv(8), conv(12), POOL, conv(8, 1, drop=True), conv(12, drop=True), conv(16, drop=True),
             conv(14)],
    # three stages of padded convs, 28 -> 14 -> 7 (two pools): one conv on the full map, two on each
    # of the smaller ones, where most of the channels are
    "stages_6k": [same(8), POOL, same(12, True), same(12, True), POOL, same(14), same(14)],
    "stages_4k": [same(6), POOL, same(8, True), same(10, True), POOL, same(12), same(12)],
}


def build(arch, bn=True, dropout=0.0):
    """The net of an architecture list: model.ConvBlocks, then global average pool and a 1x1
    conv to the 10 class scores (with a bias, no batch norm), as log-probabilities."""
    layers, c_in = [], 1
    for item in arch:
        if item == POOL:
            layers.append(nn.MaxPool2d(2))
            continue
        c_out, k, pad, drop = item
        layers.append(model.ConvBlock(c_in, c_out, k, bn=bn, dropout=dropout if drop else 0.0, padding=pad))
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(c_in, 10, 1), nn.Flatten(), nn.LogSoftmax(dim=1)]
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- the recipes

# Step 3's recipe (series.py), as the search ran it (every run below adds channels_last)
PRESENT = {k: v for k, v in series.STEP3.items() if k != "channels_last"}
# A second training to try: batches of 64, a learning rate that peaks early and
# is low for the last third, rotation with shift and zoom, dropout of at most 0.01
LOW_EARLY = dict(PRESENT, batch_size=64, degrees=8.0, translate=0.05, scale=0.05, dropout=0.01, lr=0.1,
                 schedule="piecewise", lr_points=[[0, 0.01], [2 / 15, 0.1], [9 / 15, 0.01], [1, 0.0]])
del LOW_EARLY["pct_start"], LOW_EARLY["final_div_factor"]

# name -> (architecture, recipe); every run of the search and the ablation keeps its weights in the
# channels-last layout (faster on CPUs; it changes the order of float sums, not the recipe)
RECIPES = {
    "present": ("model_3", PRESENT),
    "slim": ("slim", PRESENT),
    "slim_low_early": ("slim", LOW_EARLY),
    "stages_6k": ("stages_6k", PRESENT),
    "stages_6k_low_early": ("stages_6k", LOW_EARLY),
    "stages_4k_low_early": ("stages_4k", LOW_EARLY),
}
RECIPES = {name: (arch, dict(recipe, channels_last=True)) for name, (arch, recipe) in RECIPES.items()}

# The ablation of an adopted recipe: each ingredient of Step 3 left out in turn.  "no_schedule"
# trains at Steps 1-2's constant 0.01 with the same momentum; "no_batch_norm" builds plain convs
# with biases, as in Step 2.
ABLATION = ("full", "no_batch_norm", "no_dropout", "no_augmentation", "no_schedule", "no_weight_average")
CONSTANT_LR = 0.01


def ablated(name, leave_out):
    """(architecture, recipe, batch norm?) of recipe `name` with one ingredient left out."""
    arch, recipe = RECIPES[name]
    recipe, bn = dict(recipe), True
    if leave_out == "no_batch_norm":
        bn = False
    elif leave_out == "no_dropout":
        recipe["dropout"] = 0.0
    elif leave_out == "no_augmentation":
        recipe.update(degrees=0.0, translate=0.0, **({"scale": 0.0} if "scale" in recipe else {}))
    elif leave_out == "no_schedule":
        for key in ("pct_start", "final_div_factor", "lr_points"):
            recipe.pop(key, None)
        recipe.update(schedule="constant", lr=CONSTANT_LR)
    elif leave_out == "no_weight_average":
        recipe["ema_decay"] = 0.0
    elif leave_out != "full":
        raise ValueError(f"unknown ingredient {leave_out!r}: one of {', '.join(ABLATION)}")
    return arch, recipe, bn


# ----------------------------------------------------------------------------- the plans

SEARCH_SEEDS, CONFIRM_SEEDS = list(range(200, 208)), list(range(208, 216))


def summarize(runs, baseline="present"):
    """Per recipe: mean of the per-seed minimums, the paired difference from the baseline on the
    same seeds with its standard error, seeds at the bar, worst seed (report.summarize)."""
    return report.summarize(runs, baseline, HOLDOUT)


def pick(search):
    """The search's pick: the candidate with the highest paired mean difference from the present
    recipe (ties: more seeds at the bar, then fewer parameters)."""
    rows = {n: r for n, r in search["summary"].items() if n != "present"}
    return max(rows, key=lambda n: (rows[n]["paired_diff"], rows[n]["at_bar"], -search["params"][n]))


def adopted(search, confirm):
    """The rule of docs/search-plan.md: the pick is adopted when, over the 16 seeds of the search
    and the confirmation together, its mean of the per-seed minimums is no lower than the present
    recipe's and it holds the bar on no fewer seeds; otherwise the present recipe stays."""
    name = confirm["pick"]
    both = {n: {**search["runs"][n], **confirm["runs"][n]} for n in (name, "present")}
    s = summarize(both)
    keep = s[name]["mean_min"] >= s["present"]["mean_min"] and s[name]["at_bar"] >= s["present"]["at_bar"]
    return (name if keep else "present"), s


def plan_runs(plan, records=RECORDS):
    """[(label, architecture, recipe, batch norm?, seed)] of a plan, and its description."""
    if plan == "search":
        return ([(n, a, r, True, s) for n, (a, r) in RECIPES.items() for s in SEARCH_SEEDS],
                dict(recipes=list(RECIPES), seeds=SEARCH_SEEDS))
    search = load("search", records)
    if plan == "confirm":
        name = pick(search)
        return ([(n, *RECIPES[n], True, s) for n in (name, "present") for s in CONFIRM_SEEDS],
                dict(pick=name, recipes=[name, "present"], seeds=CONFIRM_SEEDS))
    if plan == "ablation":
        name, _ = adopted(search, load("confirm", records))
        runs = []
        for leave_out in ABLATION:
            arch, recipe, bn = ablated(name, leave_out)
            runs += [(leave_out, arch, recipe, bn, s) for s in SEARCH_SEEDS]
        return runs, dict(adopted=name, recipes=list(ABLATION), seeds=SEARCH_SEEDS)
    raise ValueError(f"unknown plan {plan!r}")


def load(plan, records=RECORDS):
    path = Path(records) / f"{plan}.json"
    if not path.is_file():
        raise SystemExit(f"{path} is not there yet: run `python experiments/search/search.py {plan}` first")
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------- one run

def train(arch, recipe, bn, seed, data_dir=None, log=print, train_subset=None):
    """One held-out run, as the Step 3 notebook trains: returns (settings, history, params, rf)."""
    utils.set_seed(seed)
    train_loader, held_out = utils.mnist_loaders(
        data_dir, batch_size=recipe["batch_size"], degrees=recipe.get("degrees", 0.0),
        translate=recipe.get("translate", 0.0), scale=recipe.get("scale", 0.0), seed=seed,
        holdout=HOLDOUT, train_subset=train_subset)
    net = utils.place(build(ARCHS[arch], bn=bn, dropout=recipe.get("dropout", 0.0)), "cpu",
                      recipe.get("channels_last", False))
    optimizer, scheduler = utils.make_optimizer(net, recipe, len(train_loader))
    ema = utils.make_ema(net, recipe["ema_decay"]) if recipe.get("ema_decay") else None
    settings = utils.run_settings(recipe, net, train_loader, held_out, optimizer, scheduler, ema)
    try:
        history = utils.fit(net, train_loader, held_out, optimizer, epochs=recipe["epochs"],
                            scheduler=scheduler, ema=ema, progress=False, log=log)
    except utils.TrainingDivergedError as err:
        history = dict(diverged=str(err))
    return settings, history, utils.count_params(net), utils.receptive_field(net)[-1]["rf"]


def run_fingerprint():
    """What in this script decides a run's numbers (the nets, the recipes, the ablation's variants
    and the training), as one fingerprint: a run file made by other such code is not reused."""
    source = "\n".join(inspect.getsource(f) for f in (conv, same, build, ablated, train))
    constants = dict(ARCHS=ARCHS, RECIPES=RECIPES, HOLDOUT=HOLDOUT, CONSTANT_LR=CONSTANT_LR,
                     CONSTANT_LR_FALLBACK=0.005)  # the plan's fallback (never needed), as the runs named it
    return records.fingerprint(source + "".join(f"\n{k} = {v!r}" for k, v in constants.items()))


def run_path(runs, label, seed, plan, of=None):
    """The run file of one run; the ablation's full recipe is the search's run of it."""
    if plan == "ablation" and label == "full":
        return Path(runs) / "search" / of / f"seed_{seed}.json"
    return Path(runs) / ("ablation" if plan == "ablation" else "search") / label / f"seed_{seed}.json"


def run_one(args):
    """`search.py one`: a single run, written to its run file (what each plan starts)."""
    if args.plan == "ablation":
        arch, recipe, bn = ablated(args.of, args.label)
    else:
        (arch, recipe), bn = RECIPES[args.label], True
    if args.epochs:
        recipe = dict(recipe, epochs=args.epochs)
    start = time.perf_counter()
    settings, history, params, rf = train(arch, recipe, bn, args.seed, args.data_dir,
                                          log=lambda line: print(f"{args.label} seed {args.seed} | {line}", flush=True),
                                          train_subset=args.train_subset)
    correct = [round(a * HOLDOUT / 100) for a in history.get("test_acc", [])]
    record = dict(label=args.label, arch=arch, batch_norm=bn, seed=args.seed, params=params,
                  receptive_field=rf, settings=settings, history=history, correct=correct,
                  seconds=round(time.perf_counter() - start, 1), **records.provenance("cpu"),
                  run_fingerprint=run_fingerprint(), probe=records.probe("Model_3", RECIPES["present"][1]))
    records.write_json(record, Path(args.out))
    return 0


# ----------------------------------------------------------------------------- a plan

def run_plan(plan, jobs=2, data_dir=None, train_subset=None, runs_dir=RUNS, records_dir=RECORDS, epochs=None,
             log=print):
    """Every run of a plan not yet done (two at a time, one thread each), then its record."""
    runs, described = plan_runs(plan, records_dir)
    of = described.get("adopted")

    def done(path):  # a run file of this script's runs, by code that computes as this checkout's
        if not path.is_file():
            return False
        r = json.loads(path.read_text())
        return r["run_fingerprint"] == run_fingerprint() and "probe" in r and not records.probe_differs(r["probe"])

    def start(item):
        label, arch, recipe, bn, seed = item
        path = run_path(runs_dir, label, seed, plan, of)
        if done(path):
            return path
        cmd = [sys.executable, __file__, "one", plan, label, str(seed), "--out", str(path)]
        cmd += ["--of", of] if of else []
        cmd += ["--data-dir", str(data_dir)] if data_dir else []
        cmd += ["--train-subset", str(train_subset)] if train_subset else []
        cmd += ["--epochs", str(epochs)] if epochs else []
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{label} seed {seed} failed:\n{proc.stderr[-3000:]}")
        log(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else f"{label} seed {seed} done")
        return path

    todo = [item for item in runs if not done(run_path(runs_dir, item[0], item[4], plan, of))]
    log(f"== {plan}: {len(runs)} runs, {len(runs) - len(todo)} already done, {jobs} at a time")
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(start, todo))
    return write_plan_record(plan, runs, described, runs_dir, records_dir)


def write_plan_record(plan, runs, described, runs_dir=RUNS, records_dir=RECORDS):
    """benchmarks/PLAN.json, whole, from the run files of the plan."""
    runs_of = {}
    for label, arch, recipe, bn, seed in runs:
        r = json.loads(run_path(runs_dir, label, seed, plan, described.get("adopted")).read_text())
        runs_of.setdefault(label, {})[str(seed)] = r  # JSON keys: seeds as text
    diverged = {n: [s for s, r in by.items() if "diverged" in r["history"]] for n, by in runs_of.items()}
    finished = {n: {s: r for s, r in by.items() if s not in diverged[n]} for n, by in runs_of.items()}
    first = next(iter(next(iter(runs_of.values())).values()))
    out = dict(
        what=f"experiments/search/search.py {plan}: Step 3 recipes on held-out digits (train on the first "
             f"{60000 - HOLDOUT:,} training images, score the last {HOLDOUT:,}), one CPU process per run",
        plan=plan, **described, window=series.WINDOW, target=series.TARGET, held_out_images=HOLDOUT,
        script="experiments/search/search.py", run_fingerprint=first["run_fingerprint"],
        git_commit=first["git_commit"],
        git_commits=sorted({r["git_commit"] for by in runs_of.values() for r in by.values()}),  # of every run
        torch=first["torch"], device=first["device"],
        threads=first["threads"],
        recipe_settings={n: dict(arch=next(iter(by.values()))["arch"], batch_norm=next(iter(by.values()))["batch_norm"],
                         settings=next(iter(by.values()))["settings"]) for n, by in runs_of.items()},
        params={n: next(iter(by.values()))["params"] for n, by in runs_of.items()},
        receptive_field={n: next(iter(by.values()))["receptive_field"] for n, by in runs_of.items()},
        diverged={n: v for n, v in diverged.items() if v},
        runs={n: {s: dict(correct=r["correct"], test_acc=r["history"].get("test_acc"), seconds=r["seconds"])
                  for s, r in by.items()} for n, by in finished.items()},
        summary=summarize({n: {s: dict(correct=r["correct"]) for s, r in by.items()} for n, by in finished.items() if by},
                          baseline="full" if plan == "ablation" else "present"))
    if plan == "confirm":
        out["adopted"], out["sixteen_seeds"] = adopted(load("search", records_dir), out)
    if len({r["run_fingerprint"] for by in runs_of.values() for r in by.values()}) != 1:
        raise RuntimeError(f"the runs of {plan} were made by different code: re-run the stale ones")
    base = "full" if plan == "ablation" else "present"
    out["probes"] = {base: records.probe("Model_3", out["recipe_settings"][base]["settings"])}
    records.write_json(out, Path(records_dir) / f"{plan}.json")
    plots.plot_plan(out, Path(records_dir) / f"{plan}.png")
    return out


# ----------------------------------------------------------------------------- command line

def list_recipes():
    for name, (arch, recipe) in RECIPES.items():
        net = build(ARCHS[arch], dropout=recipe.get("dropout", 0.0))
        print(f"{name:22s} {utils.count_params(net):6,} params  RF {utils.receptive_field(net)[-1]['rf']:3d}  {recipe}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for plan in ("search", "confirm", "ablation"):
        q = sub.add_parser(plan)
        q.add_argument("--jobs", type=int, default=2, help="runs at once, one CPU thread each")
        q.add_argument("--data-dir", help="folder holding MNIST/raw (default: $MNIST_DATA_DIR, else ./data)")
        q.add_argument("--train-subset", type=int, help="train on the first N images (smoke checks only)")
        q.add_argument("--epochs", type=int, help="train every run this many epochs (smoke checks only)")
        q.add_argument("--runs", default=str(RUNS), help="folder of the run files (default: runs/search)")
        q.add_argument("--records", default=str(RECORDS), help="folder of the plans' records (default: beside this script)")
    sub.add_parser("list")
    one = sub.add_parser("one")
    one.add_argument("plan", choices=["search", "confirm", "ablation"])
    one.add_argument("label")
    one.add_argument("seed", type=int)
    one.add_argument("--out", required=True)
    one.add_argument("--of", help="ablation: the recipe whose ingredients are left out")
    one.add_argument("--data-dir")
    one.add_argument("--train-subset", type=int)
    one.add_argument("--epochs", type=int)
    args = p.parse_args(argv)
    if args.command == "list":
        list_recipes()
        return 0
    if args.command == "one":
        torch.set_num_threads(1)
        return run_one(args)
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    if (args.train_subset or args.epochs) and Path(args.records).resolve() == RECORDS.resolve():
        p.error("--train-subset and --epochs are for smoke checks: give them --runs and --records folders of their own")
    run_plan(args.command, args.jobs, args.data_dir, args.train_subset, args.runs, args.records, args.epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
