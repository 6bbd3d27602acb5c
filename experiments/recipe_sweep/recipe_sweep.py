"""Step 3 recipes on held-out digits, many seeds at once: K copies of a recipe train as one
grouped net (a GPU tool: on a CPU, separate runs of experiments/search/search.py are faster per copy).
History: a finished experiment, kept runnable; its record lies beside this file.

Every conv is Conv2d(K*c_in, K*c_out, groups=K), so group k is copy k, with its own initial
weights, data order, augmentation and dropout; batch norm, the optimizer and the weight average
act element by element, so the K copies never mix.  Each copy trains on the first 50,000
training images and is scored on the last 10,000 after every epoch (the weight average, in eval
mode), and is judged by its minimum over the last series.WINDOW epochs, as the notebook's seeds are.
The data, the augmentation, the optimizer and schedule, and the weight average are utils.py's.

    python experiments/recipe_sweep/recipe_sweep.py --out runs/sweep                     # every recipe
    python experiments/recipe_sweep/recipe_sweep.py --out runs/sweep --recipes base,tr0.05 --copies 24
    python experiments/recipe_sweep/recipe_sweep.py --out runs/sweep --part 0/4          # recipes 0, 4, 8, ...

Each finished recipe is written to OUT/runs/NAME.json, and OUT/recipe_sweep.json is then
written anew from all of them: the whole record (settings, code, every copy's held-out count of
correct digits after every epoch).  MNIST is read from $MNIST_DATA_DIR (or --data-dir).
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import model as models  # noqa: E402
import records  # noqa: E402
import series  # noqa: E402
import utils  # noqa: E402

HOLDOUT = 10000  # the last training images, scored after every epoch; the first 50,000 train


def conv(c_out, k=3, pad=0, drop=False):
    """One conv -> BN -> ReLU [-> dropout] layer of an architecture list."""
    return ("conv", c_out, k, pad, drop)


def build(arch, K, bn=True, dropout=0.0, head_bias=True):
    """K copies of arch (a list of conv(...) and "pool" for a 2x2 max-pool), then GAP + 1x1 head
    to 10, as one net of grouped convs.  model.ConvBlock cannot be used here: its convs are not
    grouped, so K copies would mix.  Input (N, K, 28, 28), output (N, K*10, 1, 1)."""
    layers, c_in = [], 1
    for t in arch:
        if t == "pool":
            layers.append(nn.MaxPool2d(2))
            continue
        _, c_out, k, pad, drop = t
        layer = nn.Conv2d(K * c_in, K * c_out, k, padding=pad, groups=K, bias=not bn)
        if not bn:  # as model.ConvBlock does for plain blocks
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
        layers.append(layer)
        if bn:
            layers.append(nn.BatchNorm2d(K * c_out))
        layers.append(nn.ReLU())
        if drop and dropout > 0:
            layers.append(nn.Dropout(dropout))
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(K * c_in, K * 10, 1, groups=K, bias=head_bias)]
    return nn.Sequential(*layers)


def params_per_model(arch, bn=True, head_bias=True):
    return utils.count_params(build(arch, 1, bn=bn, head_bias=head_bias))


@torch.no_grad()
def correct_counts(model, val_x, val_y, K):
    """Correct held-out digits of each of the K copies, (K,) int."""
    model.eval()
    correct = torch.zeros(K, dtype=torch.long, device=val_y.device)
    for s in range(0, len(val_y), 1000):
        pred = model(val_x[s:s + 1000].expand(-1, K, -1, -1)).view(-1, K, 10).argmax(2)  # (m, K)
        correct += (pred == val_y[s:s + 1000, None]).sum(0)
    return correct


def run(cfg, K, seed, dev, train_x, train_y, val_x, val_y, log=print):
    """Train K copies of a recipe; returns correct held-out digits, (K, epochs) int."""
    recipe = utils.check_recipe(cfg["recipe"])
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)  # data order and augmentation, drawn on the CPU
    model = build(cfg["arch"], K, dropout=recipe["dropout"], head_bias=cfg.get("head_bias", True)).to(dev)
    B, N, epochs = recipe["batch_size"], len(train_y), recipe["epochs"]
    optimizer, scheduler = utils.make_optimizer(model, recipe, math.ceil(N / B))
    ema = utils.make_ema(model, recipe["ema_decay"]) if recipe["ema_decay"] else None
    xv = ((val_x.float() / 255 - utils.MEAN) / utils.STD).unsqueeze(1)      # (M, 1, 28, 28)
    counts = []
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        model.train()
        augment = epoch <= epochs - cfg.get("clean", 0)
        perm = torch.argsort(torch.rand(K, N, generator=gen), dim=1).to(dev)  # (K, N): one order per copy
        for s in range(0, N, B):
            idx = perm[:, s:s + B]                                            # (K, b)
            b = idx.shape[1]
            x = train_x[idx].float().div_(255).view(K * b, 1, 28, 28)
            if augment and (recipe["degrees"] or recipe["translate"] or recipe["scale"]):
                x = utils.random_affine(x, recipe["degrees"], recipe["translate"], gen, recipe["scale"])
            x = ((x - utils.MEAN) / utils.STD).view(K, b, 28, 28).transpose(0, 1)  # (b, K, 28, 28)
            y = train_y[idx].t()                                              # (b, K)
            out = model(x).view(b * K, 10)
            # the sum over copies of each copy's mean loss: each copy gets its own gradient
            loss = F.cross_entropy(out, y.reshape(-1), label_smoothing=cfg.get("ls", 0.0), reduction="sum") / b
            utils.step_on(loss, model, optimizer, scheduler, ema)
        counts.append(correct_counts(utils.evaluated_model(model, ema), xv, val_y, K).tolist())
        acc = [100 * n / len(val_y) for n in counts[-1]]
        log(f"  {cfg['name']} epoch {epoch} {time.time() - t0:.1f}s mean {sum(acc) / K:.3f} min {min(acc):.2f}")
    return torch.tensor(counts).T


def arch_of(net):
    """The architecture list of a model of model.py: its ConvBlocks and pools, up to the head."""
    arch = []
    for layer in net:
        if isinstance(layer, nn.MaxPool2d):
            arch.append("pool")
        elif isinstance(layer, models.ConvBlock):
            c = layer[0]
            arch.append(conv(c.out_channels, c.kernel_size[0], c.padding[0], any(isinstance(m, nn.Dropout) for m in layer)))
        elif isinstance(layer, nn.AdaptiveAvgPool2d):
            break
    return arch


M3 = arch_of(models.Model_3())
M3_PADDED_BLOCK1 = [conv(8, pad=1), conv(12, pad=1), conv(16, pad=1), "pool", conv(8, 1, 0, True),
                    conv(12, drop=True), conv(16, drop=True), conv(14)]
PEER_SHAPE = [conv(10, pad=1), conv(10, pad=1), conv(10, pad=1), "pool", conv(16), conv(16), conv(8), conv(8),
              conv(8, 1), conv(16, 1)]
TWO_POOL = [conv(8, pad=1), conv(10, pad=1), "pool", conv(12, pad=1, drop=True), conv(14, pad=1, drop=True), "pool",
            conv(14, pad=1), conv(16, pad=1)]
# Round two's Step 3 recipe, in utils' recipe form
BASE = dict(epochs=15, batch_size=128, degrees=7.0, translate=0.1, dropout=0.05, optimizer="sgd", lr=0.2,
            momentum=0.9, nesterov=True, weight_decay=0.0, schedule="onecycle", pct_start=0.3,
            final_div_factor=100, ema_decay=0.998)


def entry(name, arch=M3, **changes):
    """A sweep entry: BASE with changes; `ls` (label smoothing), `clean` (last epochs without
    augmentation) and `head_bias` are the sweep's own settings, the rest are utils recipe keys."""
    own = {k: changes.pop(k) for k in ("ls", "clean", "head_bias") if k in changes}
    return dict(name=name, arch=arch, recipe=dict(BASE, **changes), **own)


# A recipe's seed is 7000 + 97 * its index here: append new recipes, never reorder.
CONFIGS = [
    entry("base"),
    entry("ls0.1", ls=0.1),
    entry("m3pad", M3_PADDED_BLOCK1),
    entry("peer_ours", PEER_SHAPE, dropout=0.0),
    entry("clean6", clean=6),
    entry("bs64_lr0.1", batch_size=64, lr=0.1),
    entry("tr0.05", translate=0.05),
    entry("deg10", degrees=10.0),
    entry("drop0", dropout=0.0),
    entry("peer_own", PEER_SHAPE, dropout=0.0, optimizer="adam", lr=0.005, schedule="piecewise",
           lr_points=[[0, 0.005], [8 / 15, 0.005], [8 / 15, 0.0005], [1, 0.0005]], batch_size=64, translate=0.0,
           ema_decay=0.0, head_bias=False, pct_start=None, final_div_factor=None, momentum=None, nesterov=None),
    entry("m3pad_ls0.1", M3_PADDED_BLOCK1, ls=0.1),
    entry("ls0.1_clean6", ls=0.1, clean=6),
    entry("lr0.3_ls0.1", lr=0.3, ls=0.1),
    entry("two_pool", TWO_POOL),
    entry("scale0.1", scale=0.1),
    entry("pct0.2", pct_start=0.2),
    entry("adam_oc0.01", optimizer="adam", lr=0.01, momentum=None, nesterov=None),
    entry("wd5e-5", weight_decay=5e-5),
    entry("peer_tr0", PEER_SHAPE, dropout=0.0, translate=0.0),
    entry("base_rep"),
    entry("ls0.1_rep", ls=0.1),
    entry("m3pad_rep", M3_PADDED_BLOCK1),
    entry("peer_ours_rep", PEER_SHAPE, dropout=0.0),
]
for _cfg in CONFIGS:  # settings a recipe does not use (None above) are dropped, not recorded
    _cfg["recipe"] = {k: v for k, v in _cfg["recipe"].items() if v is not None}


def summary(cfg, counts, seed, seconds, images):
    """One recipe's result: every copy's correct held-out digits per epoch, and its minimum
    over the last WINDOW epochs as whole-digit accuracies."""
    low = counts[:, -series.WINDOW:].min(1).values
    bar = math.ceil(series.TARGET * images / 100)  # correct digits the bar asks for
    return dict(name=cfg["name"], arch=cfg["arch"], recipe=cfg["recipe"],
                **{k: cfg[k] for k in ("ls", "clean", "head_bias") if k in cfg},
                copies=len(counts), first_seed=seed, seconds=round(seconds, 1),
                params=params_per_model(cfg["arch"], head_bias=cfg.get("head_bias", True)),
                held_out_images=images, correct=counts.tolist(),
                min5=[100 * n / images for n in low.tolist()],
                mean_min5=round(100 * low.double().mean().item() / images, 4),
                worst=100 * low.min().item() / images, at_bar=int((low >= bar).sum()))


def write_record(out, header):
    """OUT/recipe_sweep.json, whole: the header and every recipe finished so far."""
    runs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    return records.write_json(dict(header, runs=runs), out / "recipe_sweep.json")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for the record and the log")
    p.add_argument("--recipes", help="comma-separated names from CONFIGS (default: all)")
    p.add_argument("--copies", type=int, default=24, help="seeds of each recipe, trained at once")
    p.add_argument("--part", default="0/1", help="W/N: this process runs recipes W, W+N, ... of the chosen")
    p.add_argument("--stop-after", type=float, default=0, help="seconds: start no recipe that would end later (0: no limit)")
    p.add_argument("--epochs", type=int, help="override every recipe's epochs (quick checks)")
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
    if args.copies < 1 or (args.epochs is not None and not 1 <= args.epochs <= 15):
        p.error("--copies must be at least 1 and --epochs between 1 and 15")
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    x, y = utils.load_mnist(args.data_dir, train=True)
    tx, ty, vx, vy = (t.to(dev) for t in (x[:-HOLDOUT], y[:-HOLDOUT], x[-HOLDOUT:], y[-HOLDOUT:]))
    if args.smoke:
        tx, ty, vx, vy = tx[:2000], ty[:2000], vx[:1000], vy[:1000]
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    header = dict(what="Step 3 recipes on held-out digits, K copies of each trained at once as one grouped net",
                  script="experiments/recipe_sweep/recipe_sweep.py", script_fingerprint=records.fingerprint(Path(__file__)),
                  **records.provenance(dev), command=" ".join(sys.argv[1:] if argv is None else argv),
                  train_images=len(ty), held_out_images=len(vy), window=series.WINDOW, target=series.TARGET,
                  seeds="copy k of recipe i: torch.manual_seed and the data generator at 7000 + 97 * i, then K copies from one draw")
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
            if args.epochs:
                cfg = dict(cfg, recipe=dict(cfg["recipe"], epochs=args.epochs))
            t0, seed = time.time(), 7000 + 97 * i
            counts = run(cfg, args.copies, seed, dev, tx, ty, vx, vy, log=log)
            last = time.time() - t0
            rec = summary(cfg, counts, seed, last, len(vy))
            records.write_json(rec, out / "runs" / f"{cfg['name']}.json")
            write_record(out, header)
            log(f"{cfg['name']}: {rec['params']:,} params, mean of minimums {rec['mean_min5']:.3f}%, "
                f"{rec['at_bar']} / {rec['copies']} at the bar, worst {rec['worst']:.2f}%, {last:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
