"""Step 3 recipes on held-out digits, many seeds at once: K copies of a recipe train as one
grouped net.

Every conv is Conv2d(K*c_in, K*c_out, groups=K), so group k is copy k, with its own initial
weights, data order, augmentation and dropout; batch norm, the optimizer and the weight average
act element by element, so the K copies never mix.  Each copy trains on the first 50,000
training images and is scored on the last 10,000 after every epoch (the weight average, in eval
mode), and is judged by its minimum over the last 5 epochs, as the notebook's seeds are.

A GPU trains 24 copies of a recipe in minutes (the record keeps the seconds each took).  One
line per recipe goes to OUT/results.jsonl.

    python benchmarks/recipe_sweep.py --out runs/sweep                     # every recipe
    python benchmarks/recipe_sweep.py --out runs/sweep --recipes base,tr0.05 --copies 24
    python benchmarks/recipe_sweep.py --out runs/sweep --part 0/4          # recipes 0, 4, 8, ...

MNIST is read from $MNIST_DATA_DIR/MNIST/raw (or --data-dir), as IDX files or gzipped IDX files.
"""
import argparse
import copy
import gzip
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import utils  # noqa: E402

MEAN, STD = utils.MEAN, utils.STD
TARGET, WINDOW = 99.4, 5


def read_idx(folder, name, offset):
    """An IDX file of MNIST/raw as a uint8 array; `name.gz` is read when `name` is not there."""
    path = Path(folder) / "MNIST" / "raw" / name
    opener = open if path.is_file() else gzip.open
    if not path.is_file():
        path = path.with_name(name + ".gz")
    if not path.is_file():
        raise FileNotFoundError(f"{path.with_suffix('')} (or .gz) is missing: set {utils.DATA_ENV} "
                                f"or --data-dir to a folder that holds MNIST/raw/")
    with opener(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def load_train(folder):
    """(images uint8 (60000, 28, 28), labels int64 (60000,))."""
    x = read_idx(folder, "train-images-idx3-ubyte", 16).reshape(-1, 28, 28)
    y = read_idx(folder, "train-labels-idx1-ubyte", 8)
    return torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))


def c(c_out, k=3, pad=0, drop=False):
    """A conv -> BN -> ReLU [-> dropout] layer of an architecture list."""
    return ("c", c_out, k, pad, drop)


def build(arch, K, bn=True, dropout=0.0, head_bias=True):
    """K copies of arch (a list of c(...) and "P" for a 2x2 max-pool), then GAP + 1x1 head to 10.
    Input (N, K, 28, 28), output (N, K*10, 1, 1)."""
    layers, c_in = [], 1
    for t in arch:
        if t == "P":
            layers.append(nn.MaxPool2d(2))
            continue
        _, c_out, k, pad, drop = t
        conv = nn.Conv2d(K * c_in, K * c_out, k, padding=pad, groups=K, bias=not bn)
        if not bn:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        layers.append(conv)
        if bn:
            layers.append(nn.BatchNorm2d(K * c_out))
        layers.append(nn.ReLU())
        if drop and dropout > 0:
            layers.append(nn.Dropout(dropout))
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(K * c_in, K * 10, 1, groups=K, bias=head_bias)]
    return nn.Sequential(*layers)


def params_per_model(arch, bn=True, head_bias=True):
    return sum(p.numel() for p in build(arch, 1, bn=bn, head_bias=head_bias).parameters())


def affine(x, degrees, translate, gen, scale=0.0):
    """Rotate by U(-degrees, degrees), shift by up to translate * size and scale by up to
    1 +- scale, per image: float (N, 1, 28, 28) in [0, 1]."""
    n = x.shape[0]
    r = torch.rand(n, 4, generator=gen, device=x.device)
    a = (r[:, 0] * 2 - 1) * math.radians(degrees)
    s = (r[:, 1:3] * 2 - 1) * translate * 2
    z = 1 + (r[:, 3] * 2 - 1) * scale
    cos, sin = torch.cos(a) / z, torch.sin(a) / z
    theta = torch.stack([torch.stack([cos, -sin, s[:, 0]], 1), torch.stack([sin, cos, s[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def make_optimizer(cfg, model, epochs, steps):
    """(optimizer, scheduler, steps per batch?) for a recipe."""
    lr, wd = cfg.get("lr", 0.2), cfg.get("wd", 0.0)
    if cfg.get("opt", "sgd") == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    if cfg.get("sched", "onecycle") == "onecycle":
        return opt, torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, epochs=epochs, steps_per_epoch=steps, pct_start=cfg.get("pct", 0.3),
            cycle_momentum=False, final_div_factor=cfg.get("fdiv", 100)), True
    return opt, torch.optim.lr_scheduler.StepLR(opt, cfg.get("step", 8), cfg.get("gamma", 0.1)), False


@torch.no_grad()
def correct_counts(model, val_x, val_y, K):
    """Correct held-out digits of each of the K copies, (K,) int."""
    model.eval()
    correct = torch.zeros(K, dtype=torch.long, device=val_y.device)
    for s in range(0, len(val_y), 1000):
        pred = model(val_x[s:s + 1000].expand(-1, K, -1, -1)).view(-1, K, 10).argmax(2)  # (m, K)
        correct += (pred == val_y[s:s + 1000, None]).sum(0)
    return correct


def run(cfg, K, seed, dev, train_x, train_y, val_x, val_y, epochs=15, log=print):
    """Train K copies of a recipe; returns correct held-out digits, (K, epochs) int."""
    torch.manual_seed(seed)
    gen = torch.Generator(device=dev).manual_seed(seed)
    model = build(cfg["arch"], K, dropout=cfg.get("dropout", 0.0), head_bias=cfg.get("head_bias", True)).to(dev)
    B, N = cfg.get("batch", 128), len(train_y)
    opt, sched, per_batch = make_optimizer(cfg, model, epochs, math.ceil(N / B))
    decay = cfg.get("ema", 0.998)
    ema = copy.deepcopy(model)
    live = [t for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()]
    avg = [t for t in list(ema.parameters()) + list(ema.buffers()) if t.is_floating_point()]
    n_avg, counts = 0, []
    xv = ((val_x.float() / 255 - MEAN) / STD).unsqueeze(1)      # (M, 1, 28, 28)
    deg, tr, scale = cfg.get("deg", 7.0), cfg.get("tr", 0.1), cfg.get("scale", 0.0)
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        model.train()
        aug = epoch <= epochs - cfg.get("clean", 0)
        perm = torch.argsort(torch.rand(K, N, generator=gen, device=dev), dim=1)  # (K, N): one order per copy
        for s in range(0, N, B):
            idx = perm[:, s:s + B]                                               # (K, b)
            b = idx.shape[1]
            x = train_x[idx].float().div_(255).view(K * b, 1, 28, 28)
            if aug and (deg or tr or scale):
                x = affine(x, deg, tr, gen, scale)
            x = ((x - MEAN) / STD).view(K, b, 28, 28).transpose(0, 1)           # (b, K, 28, 28)
            y = train_y[idx].t()                                                 # (b, K)
            out = model(x).view(b * K, 10)
            # the sum over copies of each copy's mean loss: each copy gets its own gradient
            loss = F.cross_entropy(out, y.reshape(-1), label_smoothing=cfg.get("ls", 0.0), reduction="sum") / b
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if per_batch:
                sched.step()
            if decay:  # utils.make_ema's average: decay min(decay, (1 + n) / (10 + n))
                with torch.no_grad():
                    if n_avg == 0:
                        torch._foreach_copy_(avg, live)
                    else:
                        torch._foreach_lerp_(avg, live, 1 - min(decay, (1 + n_avg) / (10 + n_avg)))
                n_avg += 1
        if not per_batch:
            sched.step()
        counts.append(correct_counts(ema if decay else model, xv, val_y, K).tolist())
        acc = [100 * n / len(val_y) for n in counts[-1]]
        log(f"  {cfg['name']} epoch {epoch} {time.time() - t0:.1f}s mean {np.mean(acc):.3f} min {min(acc):.2f}")
    return np.array(counts).T


M3 = [c(8), c(12), c(16), "P", c(8, 1, 0, True), c(12, drop=True), c(16, drop=True), c(14)]
M3P = [c(8, pad=1), c(12, pad=1), c(16, pad=1), "P", c(8, 1, 0, True), c(12, drop=True), c(16, drop=True), c(14)]
PEER = [c(10, pad=1), c(10, pad=1), c(10, pad=1), "P", c(16), c(16), c(8), c(8), c(8, 1), c(16, 1)]
TWO = [c(8, pad=1), c(10, pad=1), "P", c(12, pad=1, drop=True), c(14, pad=1, drop=True), "P",
       c(14, pad=1), c(16, pad=1)]
BASE = dict(arch=M3, dropout=0.05, lr=0.2, batch=128, deg=7.0, tr=0.1, ema=0.998)  # round two's Step 3

# A recipe's seed is 7000 + 97 * its index here: append new recipes, never reorder.
CONFIGS = [
    dict(BASE, name="base"),
    dict(BASE, name="ls0.1", ls=0.1),
    dict(BASE, name="m3pad", arch=M3P),
    dict(BASE, name="peer_ours", arch=PEER, dropout=0.0),
    dict(BASE, name="clean6", clean=6),
    dict(BASE, name="bs64_lr0.1", batch=64, lr=0.1),
    dict(BASE, name="tr0.05", tr=0.05),
    dict(BASE, name="deg10", deg=10.0),
    dict(BASE, name="drop0", dropout=0.0),
    dict(BASE, name="peer_own", arch=PEER, dropout=0.0, opt="adam", lr=0.005, sched="step",
         step=8, gamma=0.1, batch=64, tr=0.0, ema=0.0, head_bias=False),
    dict(BASE, name="m3pad_ls0.1", arch=M3P, ls=0.1),
    dict(BASE, name="ls0.1_clean6", ls=0.1, clean=6),
    dict(BASE, name="lr0.3_ls0.1", lr=0.3, ls=0.1),
    dict(BASE, name="two_pool", arch=TWO),
    dict(BASE, name="scale0.1", scale=0.1),
    dict(BASE, name="pct0.2", pct=0.2),
    dict(BASE, name="adam_oc0.01", opt="adam", lr=0.01),
    dict(BASE, name="wd5e-5", wd=5e-5),
    dict(BASE, name="peer_tr0", arch=PEER, dropout=0.0, tr=0.0),
    dict(BASE, name="base_rep"),
    dict(BASE, name="ls0.1_rep", ls=0.1),
    dict(BASE, name="m3pad_rep", arch=M3P),
    dict(BASE, name="peer_ours_rep", arch=PEER, dropout=0.0),
]


def summary(cfg, counts, seed, seconds, images):
    """One results line: per-copy minimums over the last WINDOW epochs, as whole-digit accuracies."""
    low = counts[:, -WINDOW:].min(1)
    bar = math.ceil(TARGET * images / 100)  # correct digits the bar asks for
    return dict(name=cfg["name"], K=len(counts), first_seed=seed, seconds=round(seconds, 1),
                params=params_per_model(cfg["arch"], head_bias=cfg.get("head_bias", True)),
                min5=[100 * n / images for n in low], last=[100 * n / images for n in counts[:, -1]],
                mean_min5=round(100 * low.mean() / images, 4), worst=100 * low.min() / images,
                frac_9940=float((low >= bar).mean()),
                epoch_mean=[round(100 * m / images, 3) for m in counts.mean(0)])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for results.jsonl and the log")
    p.add_argument("--recipes", help="comma-separated names from CONFIGS (default: all)")
    p.add_argument("--copies", type=int, default=24, help="seeds of each recipe, trained at once")
    p.add_argument("--part", default="0/1", help="W/N: this process runs recipes W, W+N, ... of the chosen")
    p.add_argument("--stop-after", type=float, default=0, help="seconds: start no recipe that would end later (0: no limit)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--smoke", action="store_true", help="2,000 training and 1,000 held-out images (a quick check)")
    p.add_argument("--data-dir", help="folder holding MNIST/raw (default: $MNIST_DATA_DIR, else ./data)")
    args = p.parse_args(argv)
    names = [cfg["name"] for cfg in CONFIGS]
    args.recipes = args.recipes.split(",") if args.recipes else names
    unknown = [r for r in args.recipes if r not in names]
    if unknown:
        p.error(f"unknown recipe(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    try:
        args.w, args.n = map(int, args.part.split("/"))
        assert 0 <= args.w < args.n
    except (ValueError, AssertionError):
        p.error(f"--part must be W/N with 0 <= W < N, got {args.part!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    x, y = load_train(utils.data_dir(args.data_dir))
    tx, ty, vx, vy = x[:50000].to(dev), y[:50000].to(dev), x[50000:].to(dev), y[50000:].to(dev)
    if args.smoke:
        tx, ty, vx, vy = tx[:2000], ty[:2000], vx[:1000], vy[:1000]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"log_{args.w}.txt", "a") as logf:
        def log(msg):
            print(msg, flush=True)
            logf.write(msg + "\n")
            logf.flush()
        chosen = [(i, cfg) for i, cfg in enumerate(CONFIGS) if cfg["name"] in args.recipes]
        last = 0.0
        for i, cfg in chosen[args.w::args.n]:
            if args.stop_after and time.time() + 1.1 * last > start + args.stop_after:
                log(f"out of time: {cfg['name']} not run")
                continue
            t0, seed = time.time(), 7000 + 97 * i
            counts = run(cfg, args.copies, seed, dev, tx, ty, vx, vy, epochs=args.epochs, log=log)
            last = time.time() - t0
            rec = summary(cfg, counts, seed, last, len(vy))
            with open(out / "results.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            log(f"{cfg['name']}: {rec['params']:,} params, mean of minimums {rec['mean_min5']:.3f}%, "
                f"{round(rec['frac_9940'] * rec['K'])} / {rec['K']} at the bar, worst {rec['worst']:.2f}%, {last:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
