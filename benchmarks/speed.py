"""Training throughput of the models, side by side in one process: for each, the training steps
of its own recipe (batch size, augmentation, optimizer and schedule, weight average, memory
layout), timed in turns over several repeats so that a machine's changing load falls on all of
them alike.  Prints images per second (the median of the repeats) and writes results/speed.json.

    python benchmarks/speed.py [--steps 100] [--repeats 5] [--threads 1]

The three steps' models train under their recipes (series.py) with utils.train_step, as their
notebooks train.  Evaluation is not timed: it is the same 10,000 images for every model.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import model  # noqa: E402
import records  # noqa: E402
import series  # noqa: E402
import utils  # noqa: E402

def contenders():
    """name -> (net maker, recipe): the three steps' models under their recipes."""
    return {f"{name} (Step {step})": (lambda step=step, name=name: getattr(model, name)(**series.model_args(step, series.recipe(step))),
                                      series.recipe(step)) for step, name in series.MODELS.items()}


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
        """Seconds for n training steps (utils.train_step, as utils.train_epoch takes them)."""
        self.net.train()
        start = time.perf_counter()
        for _ in range(n):
            try:
                x, y = next(self.batches)
            except StopIteration:
                self.batches = iter(self.loader)
                x, y = next(self.batches)
            utils.train_step(self.net, x, y, self.optimizer, self.scheduler, self.ema)
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
    result = dict(records.provenance("cpu"), steps=args.steps, repeats=args.repeats, models=rows)
    records.write_json(result, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
