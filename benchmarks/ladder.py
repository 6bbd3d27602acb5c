"""The ladder: each step's net and training over the same held-out seeds (docs/search-plan.md,
"Ladder"), so that the steps' texts rest on eight seeds rather than one run.

    python benchmarks/ladder.py                 # every run not yet done, two at a time, then the record
    python benchmarks/ladder.py --record-only   # the record from the run files there are (all must be)

Each run trains on the first 50,000 training images and is scored on the last 10,000 after every
epoch, in a process of its own with one CPU thread; it writes runs/ladder/NAME/seed_S.json when it
ends, so a ladder stopped midway goes on where it stopped.  When every run is there,
benchmarks/ladder.json is written whole from them (the plan, every run's held-out accuracy per
epoch and its end-of-training fit, the summary, the probes of the rungs' recipes), then its plot.
"""
import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import model  # noqa: E402
import plots  # noqa: E402
import records  # noqa: E402
import report  # noqa: E402
import series  # noqa: E402
import utils  # noqa: E402

HOLDOUT = 10000
SEEDS = list(range(200, 208))
# name -> (model class of model.py, its arguments, recipe): Steps 1 and 2, and Step 2 with batch norm
RUNGS = {
    "step1": ("Model_1", {}, series.recipe(1)),
    "step2": ("Model_2", {}, series.recipe(2)),
    "step2_bn": ("Model_3", {"dropout": 0.0}, series.recipe(2)),
}
PAIRS = (("step1", "step2"), ("step2", "step2_bn"), ("step2_bn", "whole"))  # (from, to), in the ladder's order
RUNS = ROOT / "runs" / "ladder"
RECORD = ROOT / "benchmarks" / "ladder.json"
WHOLE = ROOT / "experiments" / "search" / "search.json"  # Step 3's recipe on the same seeds (the search's present)


def train(name, seed, data_dir=None, epochs=None, train_subset=None, log=print):
    """One held-out run of a rung: its settings, history (or divergence) and end-of-training fit."""
    cls, args, recipe = RUNGS[name]
    recipe = dict(recipe, epochs=epochs or recipe["epochs"])
    utils.set_seed(seed)
    train_loader, held_out = utils.mnist_loaders(data_dir, batch_size=recipe["batch_size"], seed=seed,
                                                 holdout=HOLDOUT, train_subset=train_subset)
    net = utils.place(getattr(model, cls)(**args), "cpu", recipe.get("channels_last", False))
    optimizer, scheduler = utils.make_optimizer(net, recipe, len(train_loader))
    settings = utils.run_settings(recipe, net, train_loader, held_out, optimizer, scheduler)
    try:
        history = utils.fit(net, train_loader, held_out, optimizer, recipe["epochs"], scheduler, progress=False, log=log)
        end = utils.train_test_scores(net, train_loader, history, log=log)
    except utils.TrainingDivergedError as err:
        history, end = dict(diverged=str(err)), {}
    return dict(name=name, seed=seed, model=cls, params=utils.count_params(net), settings=settings,
                history=history, correct=[round(a * HOLDOUT / 100) for a in history.get("test_acc", [])], end=end,
                probe=records.probe(cls, settings, data_dir))


def run_one(args):
    """`ladder.py one NAME SEED --out PATH`: one run, written to its run file."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    run = train(args.name, args.seed, args.data_dir, args.epochs, args.train_subset,
                log=lambda line: print(f"{args.name} seed {args.seed} | {line}", flush=True))
    records.write_json(dict(run, seconds=round(time.perf_counter() - start, 1), **records.provenance("cpu")), args.out)
    return 0


def done(path):
    """A run file whose probe this checkout's code reproduces."""
    return path.is_file() and not records.probe_differs(records.read_json(path)["probe"])


def run_all(runs_dir=RUNS, jobs=2, data_dir=None, epochs=None, train_subset=None, seeds=SEEDS, log=print):
    """Every run not yet done, `jobs` at a time, each in a process of its own with one thread."""
    todo = [(n, s) for n in RUNGS for s in seeds if not done(Path(runs_dir) / n / f"seed_{s}.json")]
    log(f"== ladder: {len(RUNGS) * len(seeds)} runs, {len(RUNGS) * len(seeds) - len(todo)} already done, {jobs} at a time")

    def start(item):
        name, seed = item
        cmd = [sys.executable, __file__, "one", name, str(seed), "--out", str(Path(runs_dir) / name / f"seed_{seed}.json")]
        cmd += ["--data-dir", str(data_dir)] if data_dir else []
        cmd += ["--epochs", str(epochs)] if epochs else []
        cmd += ["--train-subset", str(train_subset)] if train_subset else []
        proc = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} seed {seed} failed:\n{proc.stderr[-3000:]}")
        log(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else f"{name} seed {seed} done")

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(start, todo))


def write_record(runs_dir=RUNS, out=RECORD, seeds=SEEDS, whole=WHOLE):
    """benchmarks/ladder.json, whole, from the run files, then its plot beside it."""
    runs = {n: {str(s): records.read_json(Path(runs_dir) / n / f"seed_{s}.json") for s in seeds} for n in RUNGS}
    diverged = {n: [s for s, r in by.items() if "diverged" in r["history"]] for n, by in runs.items()}
    kept = {n: {s: dict(correct=r["correct"], test_acc=r["history"]["test_acc"], end=r["end"], seconds=r["seconds"])
                for s, r in by.items() if s not in diverged[n]} for n, by in runs.items()}
    search = records.read_json(whole)
    kept["whole"] = {s: dict(correct=r["correct"], test_acc=r["test_acc"], end={}, seconds=r["seconds"])
                     for s, r in search["runs"]["present"].items() if int(s) in seeds}
    lows = {n: {s: dict(correct=r["correct"]) for s, r in by.items()} for n, by in kept.items() if by}
    summary = {n: row for n, row in report.summarize(lows, None, HOLDOUT).items()}
    for a, b in PAIRS:
        if a in lows and b in lows:
            pair = report.summarize({a: lows[a], b: lows[b]}, a, HOLDOUT)[b]
            summary[b].update(step_from=a, **{k: pair[k] for k in ("paired_diff", "paired_se", "paired_seeds") if k in pair})
    first = next(iter(runs["step1"].values()))
    rec = dict(
        what="benchmarks/ladder.py: each step's net and training on held-out digits (train on the first "
             f"{60000 - HOLDOUT:,} training images, score the last {HOLDOUT:,}), one CPU process per run",
        plan="ladder", seeds=seeds, recipes=list(RUNGS) + ["whole"], pairs=[list(p) for p in PAIRS],
        window=series.WINDOW, target=series.TARGET, held_out_images=HOLDOUT,
        whole_from=f"{whole.relative_to(ROOT)}: the present recipe's runs", device=first["device"],
        threads=first["threads"], torch=first["torch"],
        git_commits=sorted({r["git_commit"] for by in runs.values() for r in by.values() if r.get("git_commit")}),
        recipe_settings={n: dict(model=next(iter(by.values()))["model"], settings=next(iter(by.values()))["settings"])
                         for n, by in runs.items()} | {"whole": dict(model="Model_3",
                                                                     settings=search["recipe_settings"]["present"]["settings"])},
        params={n: next(iter(by.values()))["params"] for n, by in runs.items()} | {"whole": search["params"]["present"]},
        probes={n: next(iter(by.values()))["probe"] for n, by in runs.items()},
        diverged={n: v for n, v in diverged.items() if v}, runs=kept, summary=summary)
    records.write_json(rec, out)
    plots.plot_ladder(rec, Path(out).with_suffix(".png"))
    return rec


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command")
    one = sub.add_parser("one")
    one.add_argument("name", choices=list(RUNGS))
    one.add_argument("seed", type=int)
    one.add_argument("--out", required=True)
    for q in (p, one):
        q.add_argument("--data-dir", help="folder holding MNIST/raw (default: $MNIST_DATA_DIR, else ./data)")
        q.add_argument("--epochs", type=int, help="smoke checks only (with --runs and --out of their own)")
        q.add_argument("--train-subset", type=int, help="smoke checks only (with --runs and --out of their own)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once, one CPU thread each")
    p.add_argument("--runs", default=str(RUNS), help="folder of the run files (default: runs/ladder)")
    p.add_argument("--record", default=str(RECORD), help="the record to write (default: benchmarks/ladder.json)")
    p.add_argument("--seeds", type=int, nargs="+", default=SEEDS, help="smoke checks only")
    p.add_argument("--record-only", action="store_true", help="write the record from the run files there are")
    args = p.parse_args(argv)
    if args.command == "one":
        return run_one(args)
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    smoke = args.epochs or args.train_subset or args.seeds != SEEDS
    if smoke and Path(args.record).resolve() == RECORD.resolve():
        p.error("--epochs, --train-subset and --seeds are for smoke checks: give them --runs and --record of their own")
    if not args.record_only:
        run_all(args.runs, args.jobs, args.data_dir, args.epochs, args.train_subset, args.seeds)
    missing = [f"{n} seed {s}" for n in RUNGS for s in args.seeds if not (Path(args.runs) / n / f"seed_{s}.json").is_file()]
    if missing:
        p.error(f"runs missing: {', '.join(missing)}; run `python benchmarks/ladder.py` to make them")
    rec = write_record(args.runs, Path(args.record), args.seeds)
    for n in rec["recipes"]:
        r = rec["summary"].get(n, {})
        print(f"{n:9s} mean of minimums {r.get('mean_min', float('nan')):.3f}%  {r.get('at_bar', 0)} / {len(args.seeds)} at the bar")
    print(f"wrote {args.record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
