"""Training throughput of the models, side by side in one process: for each, the training steps
of its own recipe (batch size, augmentation, optimizer and schedule, weight average, memory
layout), timed in turns over several repeats so that a machine's changing load falls on all of
them alike.  Prints images per second (the median of the repeats) and writes results/speed.json.

    python benchmarks/speed.py [--steps 100] [--repeats 5] [--threads 1]

The three steps' models train as their notebooks do; the search's recipes (benchmarks/search.py)
as the search ran them.  Evaluation is not timed: it is the same 10,000 images for every model.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import model  # noqa: E402
import report  # noqa: E402
import search  # noqa: E402
import utils  # noqa: E402

PLAIN = dict(epochs=15, batch_size=128, optimizer="sgd", lr=0.01, momentum=0.9, nesterov=False,
             weight_decay=0.0, schedule="constant")  # Steps 1 and 2 (tests check it against the notebooks)
STEPS = {  # name -> (net maker, recipe)
    "Model_1 (Step 1)": (model.Model_1, PLAIN),
    "Model_2 (Step 2)": (model.Model_2, PLAIN),
    "Model_3 (Step 3)": (lambda: model.Model_3(dropout=search.PRESENT["dropout"]), search.RECIPES["present"][1]),
    # as the records before the freeze trained it: the same recipe, weights in the default layout
    "Model_3 (before the freeze)": (lambda: model.Model_3(dropout=search.PRESENT["dropout"]), search.PRESENT),
}


def contenders():
    """The three steps' models, then every recipe of the search."""
    out = dict(STEPS)
    for name, (arch, recipe) in search.RECIPES.items():
        if name == "present":  # Step 3's model and recipe: timed as "Model_3 (Step 3)"
            continue
        out[f"search: {name}"] = (lambda arch=arch, recipe=recipe:
                                  search.build(search.ARCHS[arch], dropout=recipe.get("dropout", 0.0)), recipe)
    return out


class Trainer:
    """One model's training steps under its recipe, ready to be timed."""

    def __init__(self, make, recipe, images, labels):
        recipe = utils.check_recipe(recipe)
        utils.set_seed(0)
        self.net = utils.place(make(), "cpu", recipe["channels_last"])
        self.loader = utils.Loader(images, labels, recipe["batch_size"], shuffle=True, degrees=recipe["degrees"],
                                   translate=recipe["translate"], scale=recipe["scale"])
        self.optimizer, self.scheduler = utils.make_optimizer(self.net, recipe, len(self.loader))
        self.ema = utils.make_ema(self.net, recipe["ema_decay"]) if recipe["ema_decay"] else None
        self.batches, self.params = iter(self.loader), utils.count_params(self.net)

    def steps(self, n):
        """Seconds for n training steps, as utils.train_epoch takes them."""
        self.net.train()
        start = time.perf_counter()
        for _ in range(n):
            try:
                x, y = next(self.batches)
            except StopIteration:
                self.batches = iter(self.loader)
                x, y = next(self.batches)
            self.optimizer.zero_grad(set_to_none=True)
            F.nll_loss(self.net(x), y).backward()
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update_parameters(self.net)
            if self.scheduler is not None:
                self.scheduler.step()
        return time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=100, help="training steps per timed turn")
    p.add_argument("--repeats", type=int, default=5, help="timed turns of each model")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (1: as each seed run)")
    p.add_argument("--data-dir", help="folder holding MNIST/raw (default: $MNIST_DATA_DIR, else ./data)")
    p.add_argument("--only", help="comma-separated names (default: all)")
    p.add_argument("--out", default=str(ROOT / "results" / "speed.json"))
    args = p.parse_args(argv)
    if args.steps < 1 or args.repeats < 1 or args.threads < 1:
        p.error("--steps, --repeats and --threads must be at least 1")
    torch.set_num_threads(args.threads)
    images, labels = utils.load_mnist(args.data_dir, train=True)
    chosen = contenders()
    if args.only:
        unknown = [n for n in args.only.split(",") if n not in chosen]
        if unknown:
            p.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(chosen)}")
        chosen = {n: chosen[n] for n in args.only.split(",")}
    trainers = {name: Trainer(make, recipe, images, labels) for name, (make, recipe) in chosen.items()}
    for t in trainers.values():
        t.steps(5)  # warm-up: kernels, allocator
    seconds = {name: [] for name in trainers}
    for r in range(args.repeats):
        for name, t in trainers.items():
            seconds[name].append(t.steps(args.steps))
        print(f"repeat {r + 1} of {args.repeats} done", flush=True)
    rows = []
    for name, t in trainers.items():
        rate = args.steps * t.loader.batch_size / statistics.median(seconds[name])
        rows.append(dict(name=name, params=t.params, batch_size=t.loader.batch_size,
                         channels_last=utils.is_channels_last(t.net), seconds=seconds[name], images_per_s=rate))
        print(f"{name:32s} {t.params:6,} params  batch {t.loader.batch_size:3d}  {rate:7,.0f} images/s")
    result = dict(report.provenance("cpu"), script_fingerprint=report.fingerprint(Path(__file__)),
                  steps=args.steps, repeats=args.repeats, models=rows)
    report.write_json(result, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
