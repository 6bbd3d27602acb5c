"""The training library behind the three notebooks: data, augmentation, the recipe's optimizer
and schedule, the train and test loops, the weight average and the receptive field.

This is the code that decides a run's numbers, so every record keeps a probe of it (records.py):
a change to what it computes stales the records it touches, a change to how it is written does
not.  The notebooks import from here and define no loop of their own; the bar and the recipes
live in series.py, the records in records.py, the pictures in plots.py, the texts in report.py.
"""
import gzip
import math
import os
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from torchvision.datasets import MNIST
from tqdm import tqdm  # the plain text bar: widget bars render as junk on GitHub

MEAN, STD = 0.1307, 0.3081  # MNIST training-set pixel statistics
DATA_ENV = "MNIST_DATA_DIR"  # environment variable naming the folder that holds MNIST/raw
# IDX files as torchvision lays them out: name -> (magic number, size in bytes)
MNIST_FILES = {
    "train-images-idx3-ubyte": (2051, 16 + 60000 * 28 * 28),
    "train-labels-idx1-ubyte": (2049, 8 + 60000),
    "t10k-images-idx3-ubyte": (2051, 16 + 10000 * 28 * 28),
    "t10k-labels-idx1-ubyte": (2049, 8 + 10000),
}
HISTORY_KEYS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds")
LIVE_KEYS = ("test_loss_live", "test_acc_live")  # with a weight average: the live weights' test scores


class MNISTNotFoundError(FileNotFoundError):
    """MNIST is not in the data folder and could not be downloaded."""


class MNISTCorruptError(ValueError):
    """An MNIST file is there but is not a complete IDX file."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


class RecipeError(ValueError):
    """A recipe lacks a setting, has one this library does not know, or does not match what runs."""


# ----------------------------------------------------------------------------- set-up

def set_seed(seed=1):
    """Seed Python and torch (CPU and every GPU) so a run can be repeated."""
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def get_device(name="auto"):
    """'auto' picks cuda, then mps, then cpu; a named device that is not there is an error."""
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
    if name == "auto":
        return torch.device(next(d for d in ("cuda", "mps", "cpu") if available[d]))
    if name not in available:
        raise ValueError(f"unknown device {name!r}: use 'auto', 'cpu', 'cuda' or 'mps'")
    if not available[name]:
        raise RuntimeError(f"device {name!r} was asked for but is not available on this machine; "
                           f"use device='auto' to take the best one there is")
    return torch.device(name)


def data_dir(root=None):
    """The MNIST folder: the argument, else $MNIST_DATA_DIR, else ./data."""
    return Path(root or os.environ.get(DATA_ENV) or "data")


# ----------------------------------------------------------------------------- data

def read_idx(root, name):
    """One MNIST IDX file of root/MNIST/raw as a flat uint8 tensor, header included; `name.gz`
    is read when `name` is not there.  A missing or damaged file is a clear error."""
    raw = Path(root) / "MNIST" / "raw"
    path = raw / name
    if not path.is_file() and (raw / f"{name}.gz").is_file():
        path = raw / f"{name}.gz"
    if not path.is_file():
        raise MNISTNotFoundError(
            f"MNIST not found in {raw} (missing: {name}). Put the four files "
            f"{', '.join(MNIST_FILES)} there (or gzipped), or point the data folder (the data_dir "
            f"argument or the {DATA_ENV} environment variable) at a folder that holds MNIST/raw/.")
    data = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    magic, size = MNIST_FILES[name]
    if int.from_bytes(data[:4], "big") != magic or len(data) != size:
        raise MNISTCorruptError(
            f"{path} is damaged: expected an IDX file of {size} bytes with magic number "
            f"{magic}, found {len(data)} bytes. Replace it with a fresh copy (delete the "
            f"folder and let torchvision download it again).")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def check_mnist_files(root):
    """Raise a clear error when an MNIST file in root/MNIST/raw is missing or damaged."""
    missing = [name for name in MNIST_FILES if not any(
        (Path(root) / "MNIST" / "raw" / n).is_file() for n in (name, f"{name}.gz"))]
    if missing:
        raise MNISTNotFoundError(
            f"MNIST not found in {Path(root) / 'MNIST' / 'raw'} (missing: {', '.join(missing)}). "
            f"Put the four files {', '.join(MNIST_FILES)} there, or point the data folder (the "
            f"data_dir argument or the {DATA_ENV} environment variable) at a folder that holds MNIST/raw/.")
    for name in MNIST_FILES:
        read_idx(root, name)


def load_mnist(root=None, train=True, download=True):
    """Return (images uint8 (N, 28, 28), labels int64 (N,)).  When the files are not in
    root/MNIST/raw, torchvision downloads them there (download=True)."""
    root = data_dir(root)
    prefix = "train" if train else "t10k"
    try:
        check_mnist_files(root)
    except MNISTNotFoundError:
        if not download:
            raise
        try:
            MNIST(str(root), train=train, download=True)
        except Exception as err:  # no network, no write access, ...
            raise MNISTNotFoundError(
                f"MNIST is not in {Path(root) / 'MNIST' / 'raw'} and downloading it failed ({err}). "
                f"Put the files {', '.join(MNIST_FILES)} there, or set {DATA_ENV} to a folder "
                f"that holds MNIST/raw/.") from err
    images = read_idx(root, f"{prefix}-images-idx3-ubyte")[16:].view(-1, 28, 28)
    labels = read_idx(root, f"{prefix}-labels-idx1-ubyte")[8:].long()
    return images, labels


def random_affine(x, degrees=7.0, translate=0.0, generator=None, scale=0.0):
    """Rotate each image of a batch by U(-degrees, degrees), shift it by up to translate * size
    and (with scale) zoom it by U(1 - scale, 1 + scale), in one affine_grid/grid_sample call;
    empty borders are filled with 0.

    x: float (N, C, H, W) in pixel space [0, 1], so that 0 is the black background.  The random
    numbers are drawn on the CPU (the same on every device); the zoom is drawn only when asked
    for, so runs without it draw what they always drew.
    """
    n = x.shape[0]
    rand = torch.rand(n, 3, generator=generator).to(x.device, x.dtype)
    angle = (rand[:, 0] * 2 - 1) * math.radians(degrees)
    shift = (rand[:, 1:] * 2 - 1) * translate * 2  # affine_grid's frame spans [-1, 1]
    cos, sin = torch.cos(angle), torch.sin(angle)
    if scale:
        zoom = 1 + (torch.rand(n, generator=generator).to(x.device, x.dtype) * 2 - 1) * scale
        cos, sin = cos / zoom, sin / zoom  # sampling at coordinates / zoom magnifies by zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class Loader:
    """Batches from MNIST tensors held on the device, read like a DataLoader.

    Each epoch reshuffles with a seeded randperm; augmentation (random_affine) runs
    on the whole batch on the device before normalisation.  dtype: the batches' float type
    (float64 for the records' probes, where float order must not matter).
    """

    def __init__(self, images, labels, batch_size=128, shuffle=False, degrees=0.0,
                 translate=0.0, seed=0, device="cpu", scale=0.0, dtype=torch.float32):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.images = images.to(device)  # uint8 (N, 28, 28): 4x smaller than floats
        self.labels = labels.to(device)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.degrees, self.translate, self.scale = degrees, translate, scale
        self.generator = torch.Generator().manual_seed(seed)
        self.dtype = dtype

    def __len__(self):
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.images.device)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            x = self.images[idx].unsqueeze(1).to(self.dtype) / 255.0  # (B, 1, 28, 28) in [0, 1]
            if self.degrees or self.translate or self.scale:
                x = random_affine(x, self.degrees, self.translate, self.generator, self.scale)
            yield (x - MEAN) / STD, self.labels[idx]


def clean_loader(loader, batch_size=1000):
    """The same images as loader, in order and without augmentation: to score a model on its
    training digits the way the test digits are scored."""
    return Loader(loader.images, loader.labels, batch_size, device=loader.images.device)


def mnist_loaders(root=None, batch_size=128, train_subset=None, degrees=0.0, translate=0.0,
                  seed=1, device="cpu", test_batch_size=1000, holdout=0, scale=0.0):
    """(train loader, test loader) over MNIST held on the device.

    train_subset keeps the first N training images (smoke runs).  holdout=N sets the last N
    training images aside and evaluates on them instead of the test set, so that recipes can
    be compared without looking at the test set.
    """
    train_x, train_y = load_mnist(root, train=True)
    if not 0 <= holdout < len(train_y):
        raise ValueError(f"holdout must be between 0 and {len(train_y) - 1} images, got {holdout}")
    if holdout:
        test_x, test_y = train_x[-holdout:], train_y[-holdout:]
        train_x, train_y = train_x[:-holdout], train_y[:-holdout]
    else:
        test_x, test_y = load_mnist(root, train=False)
    if train_subset:
        train_x, train_y = train_x[:train_subset], train_y[:train_subset]
    train = Loader(train_x, train_y, batch_size, shuffle=True, degrees=degrees,
                   translate=translate, seed=seed, device=device, scale=scale)
    test = Loader(test_x, test_y, test_batch_size, device=device)
    test.split = f"last {holdout:,} training images (held out)" if holdout else "test set"
    return train, test


# ----------------------------------------------------------------------------- the recipe

# What a recipe may hold; the first group is needed by every one.  A recipe is the record of how
# a model was trained: run_settings checks it against the live loader, model and optimizer.
RECIPE_KEYS = {
    "every": ("epochs", "batch_size", "optimizer", "lr", "schedule"),
    "sgd": ("momentum", "nesterov", "weight_decay"),
    "adam": ("weight_decay",),
    "constant": (),
    "onecycle": ("pct_start", "final_div_factor"),  # lr is the peak
    "piecewise": ("lr_points",),  # [[share of the training, lr], ...] from 0 to 1, linear in between; lr is the largest
    "optional": ("degrees", "translate", "scale", "dropout", "ema_decay", "channels_last"),
}
RECIPE_DEFAULTS = dict(degrees=0.0, translate=0.0, scale=0.0, dropout=0.0, ema_decay=0.0,
                       channels_last=False)


def check_recipe(recipe):
    """The recipe with its optional settings filled in (no augmentation, dropout, weight average
    or channels-last layout unless it says so); a missing or unknown setting is a RecipeError."""
    optimizer, schedule = recipe.get("optimizer"), recipe.get("schedule")
    if optimizer not in ("sgd", "adam"):
        raise RecipeError(f"recipe optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    if schedule not in ("constant", "onecycle", "piecewise"):
        raise RecipeError(f"recipe schedule must be 'constant', 'onecycle' or 'piecewise', got {schedule!r}")
    needed = RECIPE_KEYS["every"] + RECIPE_KEYS[optimizer] + RECIPE_KEYS[schedule]
    missing = [k for k in needed if k not in recipe]
    unknown = [k for k in recipe if k not in needed + RECIPE_KEYS["optional"]]
    if missing or unknown:
        raise RecipeError(f"recipe ({optimizer}, {schedule}): "
                          + "; ".join(part for part in (
                              f"missing {', '.join(missing)}" if missing else "",
                              f"unknown {', '.join(unknown)} (for {optimizer} and {schedule} it takes "
                              f"{', '.join(needed + RECIPE_KEYS['optional'])})" if unknown else "") if part))
    if not isinstance(recipe["epochs"], int) or recipe["epochs"] <= 0:
        raise RecipeError(f"recipe epochs must be a positive whole number, got {recipe['epochs']!r}")
    if schedule == "piecewise":
        points = recipe["lr_points"]
        if (len(points) < 2 or points[0][0] != 0 or points[-1][0] != 1
                or any(b[0] < a[0] for a, b in zip(points, points[1:]))
                or max(p[1] for p in points) != recipe["lr"]):
            raise RecipeError(f"recipe lr_points must run from 0 to 1 (shares of the training steps, never "
                              f"falling; one share twice: a step) with lr {recipe['lr']} as the largest, got {points!r}")
    return dict(RECIPE_DEFAULTS, **recipe)


def piecewise_lr(points, share):
    """The learning rate at a share of the training steps (0 to 1), linear between the
    [share, lr] points; a share given twice is a step."""
    for (s0, lr0), (s1, lr1) in zip(points, points[1:]):
        if s0 < s1 and share <= s1:
            return lr0 + (lr1 - lr0) * (share - s0) / (s1 - s0)
    return points[-1][1]


def make_optimizer(model, recipe, steps_per_epoch):
    """(optimizer, scheduler or None) for a recipe; the scheduler is stepped after every batch.

    sgd: SGD with momentum (nesterov or not); adam: Adam.  constant: lr throughout; onecycle:
    OneCycleLR to the peak lr over pct_start of the steps, then a cosine anneal to
    lr / 25 / final_div_factor, momentum fixed; piecewise: linear between lr_points (shares of
    the training steps), so that a shorter run keeps the schedule's shape.
    """
    recipe = check_recipe(recipe)
    if recipe["optimizer"] == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=recipe["lr"], momentum=recipe["momentum"],
                                    nesterov=recipe["nesterov"], weight_decay=recipe["weight_decay"])
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    if recipe["schedule"] == "onecycle":
        return optimizer, torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe["lr"], epochs=recipe["epochs"], steps_per_epoch=steps_per_epoch,
            pct_start=recipe["pct_start"], cycle_momentum=False, final_div_factor=recipe["final_div_factor"])
    if recipe["schedule"] == "piecewise":
        points, peak, total = recipe["lr_points"], recipe["lr"], recipe["epochs"] * steps_per_epoch
        return optimizer, torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: piecewise_lr(points, step / total) / peak)
    return optimizer, None


def place(model, device, channels_last=False):
    """The model on the device, its weights in the channels-last layout if asked for (the
    activations follow the weights' layout; it changes the order of float sums and of dropout's
    draws, so it is part of the recipe)."""
    return model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)


def is_channels_last(model):
    """Whether the model's convolutions hold their weights in the channels-last layout."""
    convs = [m for m in model.modules()  # a 1x1 kernel or one input channel: both layouts coincide
             if isinstance(m, nn.Conv2d) and m.in_channels > 1 and m.weight[0, 0].numel() > 1]
    return bool(convs) and all(m.weight.is_contiguous(memory_format=torch.channels_last)
                               and not m.weight.is_contiguous() for m in convs)


def run_settings(recipe, model, train_loader, test_loader, optimizer, scheduler=None, ema=None):
    """The settings a results file records: the recipe, checked against what runs (the loader's
    batch and augmentation, the model's dropout and layout, the optimizer's and scheduler's
    public state, the weight average's decay), plus the data the run trains and is scored on.
    A difference is a RecipeError naming the setting."""
    recipe = check_recipe(recipe)
    group = optimizer.param_groups[0]
    live = dict(batch_size=train_loader.batch_size, degrees=train_loader.degrees,
                translate=train_loader.translate, scale=train_loader.scale,
                dropout=max([m.p for m in model.modules() if isinstance(m, nn.Dropout)], default=0.0),
                optimizer=type(optimizer).__name__.lower(), weight_decay=group["weight_decay"],
                ema_decay=getattr(ema, "decay", 0.0) if ema is not None else 0.0,
                channels_last=is_channels_last(model))
    if recipe["optimizer"] == "sgd":
        live.update(momentum=group["momentum"], nesterov=group["nesterov"])
    if isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):
        live.update(schedule="onecycle", lr=group["max_lr"], epochs=scheduler.total_steps / len(train_loader),
                    final_div_factor=group["initial_lr"] / group["min_lr"])
        if scheduler.cycle_momentum:
            raise RecipeError("the one-cycle schedule cycles the momentum: make it with make_optimizer, "
                              "which fixes it, so that the recorded momentum is the one used")
    elif isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        live.update(schedule="piecewise", lr=group["initial_lr"])
    elif scheduler is None:
        live.update(schedule="constant", lr=group["lr"])
    else:
        raise RecipeError(f"{type(scheduler).__name__} is not a schedule of this library: use make_optimizer")
    differ = [f"{k}: recipe {recipe[k]!r}, running {v!r}" for k, v in live.items()
              if k in recipe and not (v == recipe[k] or isinstance(v, float) and math.isclose(v, recipe[k]))]
    if differ:
        raise RecipeError("the run does not follow its recipe (" + "; ".join(differ) + ")")
    return dict(recipe, train_images=len(train_loader.labels), test_images=len(test_loader.labels),
                evaluated_on=getattr(test_loader, "split", "test set"),
                batch_norm=any(isinstance(m, nn.BatchNorm2d) for m in model.modules()))


# ----------------------------------------------------------------------------- loops

class RunningSums:
    """Loss and correct-count sums kept on the device, read (one sync) at the end of an epoch."""

    def __init__(self, device):
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.long, device=device)
        self.seen = 0

    def add(self, out, y, loss_sum):
        self.loss += loss_sum
        self.correct += (out.argmax(1) == y).sum()
        self.seen += len(y)

    def result(self):
        """(mean loss, accuracy %)."""
        return self.loss.item() / self.seen, 100.0 * self.correct.item() / self.seen


def train_step(model, x, y, optimizer, scheduler=None, ema=None):
    """One optimizer step on a batch (step_on); returns (log-probabilities (B, 10), the batch's
    mean loss, detached).  The loop and the speed benchmark both train with it."""
    out = model(x)
    loss = F.nll_loss(out, y)
    step_on(loss, model, optimizer, scheduler, ema)
    return out, loss.detach()


def step_on(loss, model, optimizer, scheduler=None, ema=None):
    """Gradients of loss, one optimizer step, then the weight average and the schedule follow."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if ema is not None:
        ema.update_parameters(model)
    if scheduler is not None:
        scheduler.step()


def train_epoch(model, loader, optimizer, scheduler=None, epoch=1, ema=None, progress=True):
    """One pass over loader, the scheduler stepped after every batch; returns (mean loss, accuracy %)."""
    model.train()
    sums = RunningSums(next(model.parameters()).device)
    first_bad = torch.full_like(sums.correct, -1)  # first batch with a non-finite loss
    bar = tqdm(total=len(loader), desc=f"epoch {epoch:2d}", ncols=80, disable=not progress,
               mininterval=2.0, file=sys.stdout)  # stdout: bars and epoch lines interleave
    for batch, (x, y) in enumerate(loader, start=1):
        out, loss = train_step(model, x, y, optimizer, scheduler, ema)
        bad = ~torch.isfinite(loss) & (first_bad < 0)
        first_bad = torch.where(bad, torch.full_like(first_bad, batch), first_bad)
        sums.add(out, y, loss * len(y))
        bar.update()
    bar.close()
    if first_bad.item() >= 0:
        raise TrainingDivergedError(
            f"the training loss became NaN or infinite in epoch {epoch}, batch {first_bad.item()} "
            f"of {len(loader)}; lower the learning rate or check the inputs")
    return sums.result()


@torch.no_grad()
def evaluate(model, loader):
    """(mean loss, accuracy %) on loader, with the model in eval mode."""
    model.eval()
    sums = RunningSums(next(model.parameters()).device)
    for x, y in loader:
        out = model(x)
        sums.add(out, y, F.nll_loss(out, y, reduction="sum"))
    return sums.result()


def make_ema(model, decay=0.999):
    """An exponential moving average of the weights and BN statistics (torch.optim.swa_utils).

    The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates: early on the average
    follows the training closely instead of carrying the random initial weights for hundreds of
    steps (with a fixed 0.998 the random start would still weigh 0.998**469, about 0.39, in the
    average after a first epoch of 469 batches).
    """
    def average(avg, new, n):
        d = min(decay, (1.0 + n) / (10.0 + n))
        return avg + (new - avg) * (1.0 - d)
    ema = AveragedModel(model, avg_fn=average, use_buffers=True)
    ema.decay = decay  # read back by run_settings
    return ema


def evaluated_model(model, ema=None):
    """The plain nn.Module whose weights each epoch evaluates: the average when there is one."""
    return ema.module if ema is not None else model


def epoch_line(row):
    """The fixed-format line printed after each epoch."""
    return (f"epoch {row['epoch']:2d} | lr {row['lr']:.5f} | train loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:6.2f}% | test loss {row['test_loss']:.4f} "
            f"acc {row['test_acc']:6.2f}% | {row['seconds']:5.1f}s")


def fit(model, train_loader, test_loader, optimizer, epochs=15, scheduler=None, ema=None,
        progress=True, log=print):
    """Train for `epochs` epochs, evaluating after each; returns the history as a dict of
    per-epoch lists (HISTORY_KEYS).  With `ema` (make_ema) the averaged weights are the ones
    evaluated, and the live weights are scored on the test digits too (test_loss_live,
    test_acc_live: what the average adds); the scheduler (make_optimizer's) steps after every
    batch."""
    if not isinstance(epochs, int) or epochs <= 0:
        raise ValueError(f"epochs must be a positive whole number, got {epochs!r}")
    keys = HISTORY_KEYS + (LIVE_KEYS if ema is not None else ())
    history = {key: [] for key in keys}
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_acc = train_epoch(model, train_loader, optimizer, scheduler, epoch,
                                            ema=ema, progress=progress)
        test_loss, test_acc = evaluate(evaluated_model(model, ema), test_loader)
        row = dict(epoch=epoch, lr=lr, train_loss=train_loss, train_acc=train_acc,
                   test_loss=test_loss, test_acc=test_acc)
        if ema is not None:
            row["test_loss_live"], row["test_acc_live"] = evaluate(model, test_loader)
        row["seconds"] = time.perf_counter() - start
        for key in keys:
            history[key].append(row[key])
        log(epoch_line(row))
    return history


def train_test_scores(model, train_loader, history, log=print):
    """Train and test scores of the weights at the end, measured the same way (eval mode, no
    augmentation, no dropout): the honest train-test gap.  Logs one line; returns the scores."""
    train_loss, train_acc = evaluate(model, clean_loader(train_loader))
    scores = dict(train_loss=train_loss, train_acc=train_acc, test_loss=history["test_loss"][-1],
                  test_acc=history["test_acc"][-1])
    log(f"final weights, eval mode | train loss {train_loss:.4f} acc {train_acc:6.2f}% (un-augmented) "
        f"| test loss {scores['test_loss']:.4f} acc {scores['test_acc']:6.2f}% "
        f"| gap {train_acc - scores['test_acc']:+.2f} pt")
    return scores


# ----------------------------------------------------------------------------- inspection

def count_params(model):
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _pair(v):
    return v[0] if isinstance(v, tuple) else v


RF_LAYERS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def traced_layers(model, input_size=(1, 28, 28), kinds=RF_LAYERS):
    """[(module, input, output)] for the conv and pooling layers, in the order forward runs them."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((m, i[0], o)))
             for m in model.modules() if isinstance(m, kinds)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_size, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return seen


def receptive_field(model, input_size=(1, 28, 28)):
    """Per-layer receptive-field table for the conv and pooling layers, in forward order.

    Each row: layer, output size, kernel, stride, jump (input pixels between neighbouring
    outputs) and rf (input pixels one output unit sees).  A global (adaptive) pool counts as
    a kernel the size of its input.
    """
    rows, rf, jump, counts = [], 1, 1, {}
    for m, x, out in traced_layers(model, input_size):
        if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            k, s, d, kind = x.shape[-1], 1, 1, "gap"
        else:
            k, s, d = _pair(m.kernel_size), _pair(m.stride), _pair(getattr(m, "dilation", 1))
            kind = "conv" if isinstance(m, nn.Conv2d) else "pool"
        counts[kind] = counts.get(kind, 0) + 1
        rf += (k - 1) * d * jump
        jump *= s
        rows.append(dict(layer=f"{kind}{counts[kind]}", output=list(out.shape[1:]),
                         kernel=k, stride=s, jump=jump, rf=rf))
    return rows
