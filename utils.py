"""The library behind the three notebooks: data, augmentation, loops, receptive fields,
summaries, plots and results.  The notebooks import from here and define no loop of their own.
"""
import copy
import hashlib
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
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
CODE_FILES = ("model.py", "utils.py")  # the code a results file records the sha256 of
HISTORY_KEYS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds")


class MNISTNotFoundError(FileNotFoundError):
    """MNIST is not in the data folder and could not be downloaded."""


class MNISTCorruptError(ValueError):
    """An MNIST file is there but is not a complete IDX file."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


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

def check_mnist_files(root):
    """Raise a clear error when an MNIST file in root/MNIST/raw is missing or damaged."""
    raw = Path(root) / "MNIST" / "raw"
    missing = [name for name in MNIST_FILES if not (raw / name).is_file()]
    if missing:
        raise MNISTNotFoundError(
            f"MNIST not found in {raw} (missing: {', '.join(missing)}). Put the four files "
            f"{', '.join(MNIST_FILES)} there, or point the data folder (the data_dir argument or "
            f"the {DATA_ENV} environment variable) at a folder that holds MNIST/raw/.")
    for name, (magic, size) in MNIST_FILES.items():
        path = raw / name
        head = path.open("rb").read(4)
        actual = path.stat().st_size
        if int.from_bytes(head, "big") != magic or actual != size:
            raise MNISTCorruptError(
                f"{path} is damaged: expected an IDX file of {size} bytes with magic number "
                f"{magic}, found {actual} bytes. Replace it with a fresh copy (delete the "
                f"folder and let torchvision download it again).")


def load_mnist(root=None, train=True, download=True):
    """Return (images uint8 (N, 28, 28), labels int64 (N,)) read through torchvision."""
    from torchvision.datasets import MNIST
    root = data_dir(root)
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
        check_mnist_files(root)
    ds = MNIST(str(root), train=train, download=False)
    return ds.data, ds.targets


def random_affine(x, degrees=7.0, translate=0.0, generator=None):
    """Rotate each image of a batch by U(-degrees, degrees) and shift it by up to
    translate * size, in one affine_grid/grid_sample call; empty borders are filled with 0.

    x: float (N, C, H, W) in pixel space [0, 1], so that 0 is the black background.
    """
    n = x.shape[0]
    rand = torch.rand(n, 3, generator=generator).to(x.device)  # CPU draws: same on every device
    angle = (rand[:, 0] * 2 - 1) * math.radians(degrees)
    shift = (rand[:, 1:] * 2 - 1) * translate * 2  # affine_grid's frame spans [-1, 1]
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class Loader:
    """Batches from MNIST tensors held on the device, read like a DataLoader.

    Each epoch reshuffles with a seeded randperm; augmentation (random_affine) runs
    on the whole batch on the device before normalisation.
    """

    def __init__(self, images, labels, batch_size=128, shuffle=False, degrees=0.0,
                 translate=0.0, seed=0, device="cpu"):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.images = images.to(device)  # uint8 (N, 28, 28): 4x smaller than floats
        self.labels = labels.to(device)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.degrees, self.translate = degrees, translate
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self):
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.images.device)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            x = self.images[idx].unsqueeze(1).float() / 255.0  # (B, 1, 28, 28) in [0, 1]
            if self.degrees or self.translate:
                x = random_affine(x, self.degrees, self.translate, self.generator)
            yield (x - MEAN) / STD, self.labels[idx]


def clean_loader(loader, batch_size=1000):
    """The same images as loader, in order and without augmentation: to score a model on its
    training digits the way the test digits are scored."""
    return Loader(loader.images, loader.labels, batch_size, device=loader.images.device)


def mnist_loaders(root=None, batch_size=128, train_subset=None, degrees=0.0, translate=0.0,
                  seed=1, device="cpu", test_batch_size=1000, holdout=0):
    """(train loader, test loader) over MNIST held on the device.

    train_subset keeps the first N training images (smoke runs).  holdout=N sets the last N
    training images aside and evaluates on them instead of the test set: recipes are chosen
    that way, so that the test set is only ever used for the record.
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
                   translate=translate, seed=seed, device=device)
    test = Loader(test_x, test_y, test_batch_size, device=device)
    test.split = f"last {holdout:,} training images (held out)" if holdout else "test set"
    return train, test


# ----------------------------------------------------------------------------- loops

def is_per_batch(scheduler):
    """Schedulers that expect a step after every batch rather than every epoch."""
    return isinstance(scheduler, (torch.optim.lr_scheduler.OneCycleLR,
                                  torch.optim.lr_scheduler.CyclicLR))


class Tally:
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


def train_epoch(model, loader, optimizer, scheduler=None, epoch=1, ema=None, progress=True):
    """One pass over loader; returns (mean loss, accuracy %)."""
    model.train()
    tally = Tally(next(model.parameters()).device)
    first_bad = torch.full_like(tally.correct, -1)  # first batch with a non-finite loss
    bar = tqdm(total=len(loader), desc=f"epoch {epoch:2d}", ncols=80, disable=not progress,
               mininterval=2.0, file=sys.stdout)  # stdout: bars and epoch lines interleave
    for batch, (x, y) in enumerate(loader, start=1):
        optimizer.zero_grad(set_to_none=True)
        out = model(x)                                   # (B, 10) log-probabilities
        loss = F.nll_loss(out, y)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update_parameters(model)
        if scheduler is not None and is_per_batch(scheduler):
            scheduler.step()
        bad = ~torch.isfinite(loss.detach()) & (first_bad < 0)
        first_bad = torch.where(bad, torch.full_like(first_bad, batch), first_bad)
        tally.add(out, y, loss.detach() * len(y))
        bar.update()
    bar.close()
    if first_bad.item() >= 0:
        raise TrainingDivergedError(
            f"the training loss became NaN or infinite in epoch {epoch}, batch {first_bad.item()} "
            f"of {len(loader)}; lower the learning rate or check the inputs")
    return tally.result()


@torch.no_grad()
def evaluate(model, loader):
    """(mean loss, accuracy %) on loader, with the model in eval mode."""
    model.eval()
    tally = Tally(next(model.parameters()).device)
    for x, y in loader:
        out = model(x)
        tally.add(out, y, F.nll_loss(out, y, reduction="sum"))
    return tally.result()


def make_ema(model, decay=0.999):
    """An exponential moving average of the weights and BN statistics (torch.optim.swa_utils).

    The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates: early on the average
    follows the training closely instead of carrying the random initial weights for hundreds of
    steps (with a fixed 0.998 the random start would still weigh 0.998**469, about 0.39, in the
    average after a first epoch of 469 batches).
    """
    from torch.optim.swa_utils import AveragedModel

    def average(avg, new, n):
        d = min(decay, (1.0 + n) / (10.0 + n))
        return avg + (new - avg) * (1.0 - d)
    ema = AveragedModel(model, avg_fn=average, use_buffers=True)
    ema.decay = decay  # read back into the run's settings
    return ema


def epoch_line(row):
    """The fixed-format line printed after each epoch."""
    return (f"epoch {row['epoch']:2d} | lr {row['lr']:.5f} | train loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:6.2f}% | test loss {row['test_loss']:.4f} "
            f"acc {row['test_acc']:6.2f}% | {row['seconds']:5.1f}s")


def fit(model, train_loader, test_loader, optimizer, epochs=15, scheduler=None, ema=None,
        progress=True, log=print):
    """Train for `epochs` epochs, evaluating after each; returns the history as a dict of
    per-epoch lists (HISTORY_KEYS).  With `ema` (make_ema) the averaged weights are the ones
    evaluated; the scheduler steps per batch (OneCycleLR, CyclicLR) or per epoch (the rest;
    ReduceLROnPlateau is given the test loss)."""
    if not isinstance(epochs, int) or epochs <= 0:
        raise ValueError(f"epochs must be a positive whole number, got {epochs!r}")
    history = {key: [] for key in HISTORY_KEYS}
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_acc = train_epoch(model, train_loader, optimizer, scheduler, epoch,
                                            ema=ema, progress=progress)
        test_loss, test_acc = evaluate(ema if ema is not None else model, test_loader)
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(test_loss)
        elif scheduler is not None and not is_per_batch(scheduler):
            scheduler.step()
        row = dict(epoch=epoch, lr=lr, train_loss=train_loss, train_acc=train_acc,
                   test_loss=test_loss, test_acc=test_acc, seconds=time.perf_counter() - start)
        for key in HISTORY_KEYS:
            history[key].append(row[key])
        log(epoch_line(row))
    return history


def _plain(v):
    """v if it is a JSON scalar (or a tuple of them, as a list), else None."""
    if isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (tuple, list)) and all(isinstance(x, (int, float)) for x in v):
        return list(v)
    return None


def run_settings(model, loader, optimizer, scheduler=None, ema=None, test_loader=None):
    """The settings of a run, read from the live objects (so the record is what ran):
    batch and augmentation from the loader, dropout from the model, the optimizer's group
    settings, the scheduler's own fields, the EMA decay and the size of the test set."""
    group = optimizer.param_groups[0]
    skip = {"params", "lr", "initial_lr", "max_lr", "min_lr", "foreach", "maximize", "capturable",
            "differentiable", "fused", "decoupled_weight_decay"}
    settings = dict(batch_size=loader.batch_size, degrees=loader.degrees, translate=loader.translate,
                    train_images=len(loader.labels),
                    dropout=sorted({m.p for m in model.modules() if isinstance(m, nn.Dropout)}),
                    batch_norm=any(isinstance(m, nn.BatchNorm2d) for m in model.modules()),
                    optimizer=type(optimizer).__name__,
                    lr=group.get("initial_lr", group["lr"]),
                    **{k: _plain(v) for k, v in group.items() if k not in skip and _plain(v) is not None})
    if scheduler is not None:
        fields = {k: _plain(v) for k, v in vars(scheduler).items()
                  if not k.startswith("_") and k not in ("last_epoch", "verbose", "base_lrs")
                  and _plain(v) is not None}
        fields.update({k: group[k] for k in ("max_lr", "min_lr") if k in group})
        phases = getattr(scheduler, "_schedule_phases", None)
        if phases:  # OneCycleLR: the warm-up's share of the steps
            fields["pct_start"] = round((phases[0]["end_step"] + 1) / scheduler.total_steps, 4)
            fields["anneal_strategy"] = getattr(scheduler, "_anneal_func_type", None)
        settings["scheduler"] = dict(name=type(scheduler).__name__, **fields)
    settings["ema_decay"] = getattr(ema, "decay", None) if ema is not None else None
    if test_loader is not None:
        settings["test_images"] = len(test_loader.labels)
        settings["evaluated_on"] = getattr(test_loader, "split", "test set")
    return settings


def file_sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def git_state(folder, files=CODE_FILES):
    """(HEAD commit, whether folder's copies of files equal the ones in that commit) for the
    git checkout that holds folder; (None, None) outside one (Colab)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, timeout=10,
                              check=True).stdout
    try:
        commit = git("rev-parse", "HEAD").decode().strip()
        same = all(hashlib.sha256(git("show", f"HEAD:{name}")).hexdigest()
                   == file_sha256(Path(folder) / name) for name in files)
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, same


def provenance(device):
    """What made a results file: the sha256 of model.py and utils.py, the git commit (and whether
    those two files are the committed ones), torch, the device and the CPU threads."""
    here = Path(__file__).resolve().parent
    commit, same = git_state(here)
    return dict(code={name: file_sha256(here / name) for name in CODE_FILES},
                git_commit=commit, code_as_committed=same, torch=torch.__version__,
                device=device_name(device), threads=torch.get_num_threads())


def final_scores(model, train_loader, history, log=print):
    """Train and test scores of the final weights measured the same way (eval mode, no
    augmentation, no dropout): the honest train-test gap.  Logs one line; returns the scores."""
    train_loss, train_acc = evaluate(model, clean_loader(train_loader))
    scores = dict(train_loss=train_loss, train_acc=train_acc, test_loss=history["test_loss"][-1],
                  test_acc=history["test_acc"][-1])
    log(f"final weights, eval mode | train loss {train_loss:.4f} acc {train_acc:6.2f}% (un-augmented) "
        f"| test loss {scores['test_loss']:.4f} acc {scores['test_acc']:6.2f}% "
        f"| gap {train_acc - scores['test_acc']:+.2f} pt")
    return scores


def final_model(model, ema=None):
    """The plain nn.Module whose weights were evaluated: the EMA copy when there is one."""
    return ema.module if ema is not None else model


# ----------------------------------------------------------------------------- inspection

def count_params(model, trainable_only=True):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def print_layers(model, input_size=(1, 28, 28)):
    """Print torchsummary's layer table (of a CPU copy, so any device works); returns the
    trainable parameter count."""
    from torchsummary import summary
    summary(copy.deepcopy(model).cpu(), input_size, device="cpu")
    return count_params(model)


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
        rows.append(dict(layer=f"{kind}{counts[kind]}", output=tuple(out.shape[1:]),
                         kernel=k, stride=s, jump=jump, rf=rf))
    return rows


def format_rf_table(rows):
    """The receptive-field rows as a fixed-width text table."""
    lines = [f"{'layer':<8} {'output (CxHxW)':>15} {'k':>3} {'s':>3} {'jump':>5} {'RF':>4}"]
    for r in rows:
        out = "x".join(str(v) for v in r["output"])
        lines.append(f"{r['layer']:<8} {out:>15} {r['kernel']:>3} {r['stride']:>3} "
                     f"{r['jump']:>5} {r['rf']:>4}")
    return "\n".join(lines)


@torch.no_grad()
def misclassified(model, loader, limit=25):
    """Up to `limit` wrong test predictions: (images (n, 28, 28) in [0, 1], true, predicted)."""
    model.eval()
    images, truth, preds = [], [], []
    for x, y in loader:
        p = model(x).argmax(1)
        wrong = p != y
        images.append(x[wrong]), truth.append(y[wrong]), preds.append(p[wrong])
        if sum(len(t) for t in truth) >= limit:
            break
    images = (torch.cat(images)[:limit, 0] * STD + MEAN).cpu()
    return images, torch.cat(truth)[:limit].cpu(), torch.cat(preds)[:limit].cpu()


# ----------------------------------------------------------------------------- plots

def save_figure(fig, path=None):
    """Save fig as a PNG at path (creating its folder), if a path is given; returns fig."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=90)
    return fig


def plot_history(history, path=None, target=99.4, title=""):
    """Loss and accuracy per epoch, train vs test, every point shown; a third panel zooms in on
    the accuracy around the target line."""
    import matplotlib.pyplot as plt
    fig, (ax_loss, ax_acc, ax_zoom) = plt.subplots(1, 3, figsize=(14, 3.8))
    e = history["epoch"]
    for key, label in (("train", "train"), ("test", "test")):
        ax_loss.plot(e, history[f"{key}_loss"], "o-", ms=4, label=label)
        for ax in (ax_acc, ax_zoom):
            ax.plot(e, history[f"{key}_acc"], "o-", ms=4, label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss (NLL)", title="loss", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    ax_zoom.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy, 98.5-100% (zoom)",
                ylim=(98.5, 100))
    for ax in (ax_acc, ax_zoom):
        ax.axhline(target, color="red", ls="--", lw=1, label=f"{target}%")
    for ax in (ax_loss, ax_acc, ax_zoom):
        ax.grid(alpha=0.3), ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_seeds(record, path=None, target=99.4, window=5):
    """Test accuracy per epoch for each seed of a seeds record: all epochs, and the last ones."""
    import matplotlib.pyplot as plt
    fig, (full, zoom) = plt.subplots(1, 2, figsize=(12, 3.8))
    for row in record["seeds"]:
        epochs = range(1, len(row["test_acc"]) + 1)
        for ax in (full, zoom):
            ax.plot(epochs, row["test_acc"], "o-", ms=3, label=f"seed {row['seed']}")
    n = record["epochs"]
    lows = [min(row["test_acc"][-window:]) for row in record["seeds"]]
    for ax in (full, zoom):
        ax.axhline(target, color="red", ls="--", lw=1, label=f"{target}%")
        ax.set(xlabel="epoch", ylabel="test accuracy (%)")
        ax.grid(alpha=0.3)
    full.set(title="every epoch")
    zoom.set(title=f"last {window} epochs", xlim=(n - window + 0.5, n + 0.5),
             ylim=(min(min(lows), target) - 0.1, 99.8))
    zoom.legend(fontsize=7, loc="lower left", ncol=4)
    fig.suptitle(f"{record['model']}, {record['params']:,} parameters: test accuracy per seed")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_augmented(loader, path=None, n=20, cols=10):
    """A grid of the first n images of one training batch, as the model sees them."""
    import matplotlib.pyplot as plt
    x, y = next(iter(loader))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.2))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < min(n, len(y)):
            ax.imshow((x[i, 0] * STD + MEAN).cpu(), cmap="gray_r")
            ax.set_title(str(y[i].item()), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_misclassified(images, truth, preds, path=None, cols=10):
    """A grid of wrongly classified digits titled 'true -> predicted'."""
    import matplotlib.pyplot as plt
    rows = max(1, math.ceil(len(images) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.3))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap="gray_r")
            ax.set_title(f"{truth[i]} -> {preds[i]}", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- results

def atomic_write(path, write):
    """Call write(tmp_path) then rename onto path, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def make_record(model, history, seed, device, wall_seconds, settings=None, final=None):
    """The JSON-ready record of one run, with what made it (provenance).  final: scores of the
    final weights measured after training (e.g. on the un-augmented training digits)."""
    rows = receptive_field(model)
    return dict(model=type(model).__name__, params=count_params(model),
                receptive_field=rows[-1]["rf"], rf_table=format_rf_table(rows),
                epochs=len(history["epoch"]), seed=seed, wall_seconds=round(wall_seconds, 1),
                **provenance(device), settings=settings or {}, final=final or {}, history=history)


def score_history(history, window=5, target=99.4):
    """Best train/test accuracy with their epochs, and the last `window` test accuracies."""
    def best(key):
        i = max(range(len(history[key])), key=lambda j: (history[key][j], -j))
        return history[key][i], history["epoch"][i]
    last = history["test_acc"][-window:]
    (best_train, best_train_epoch), (best_test, best_test_epoch) = best("train_acc"), best("test_acc")
    return dict(best_train=best_train, best_train_epoch=best_train_epoch, best_test=best_test,
                best_test_epoch=best_test_epoch, last=last, min_last=min(last),
                consistent=len(last) == window and min(last) >= target)


def result_markdown(record, window=5, target=99.4):
    """The Result block of a step, written from its results record (never by hand)."""
    s = score_history(record["history"], window, target)
    last = ", ".join(f"{a:.2f}" for a in s["last"])
    verdict = (f"all >= {target}%: the target is met in this run" if s["consistent"]
               else f"not all >= {target}%: the target is not met in this run")
    return "\n".join([
        f"- Parameters: {record['params']:,} (receptive field {record['receptive_field']})",
        f"- Best train accuracy: {s['best_train']:.2f}% (epoch {s['best_train_epoch']})",
        f"- Best test accuracy: {s['best_test']:.2f}% (epoch {s['best_test_epoch']})",
        f"- Test accuracy, last {len(s['last'])} epochs: {last} (%); min {s['min_last']:.2f}%, {verdict}",
        f"- {record['epochs']} epochs, seed {record['seed']}, {record['wall_seconds']:.0f} s on "
        f"{record['device']}, {record['threads']} CPU thread{'s' if record['threads'] != 1 else ''}",
    ])


def save_run(model, history, step, seed, device, wall_seconds, settings=None, final=None,
             results_dir="results"):
    """Write results/stepN.json and results/Model_N.pt; returns the record."""
    record = make_record(model, history, seed, device, wall_seconds, settings, final)
    write_json(record, Path(results_dir) / f"step{step}.json")
    save_weights(model, Path(results_dir) / f"{record['model']}.pt")
    return record


def device_name(device):
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type != "cpu":
        return device.type
    name = platform.processor() or platform.machine()
    try:  # Linux: the CPU's marketing name
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next(l.split(":", 1)[1].strip() for l in lines if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name} ({os.cpu_count()} cores)"


def write_json(data, path):
    """Write data as JSON, atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=1) + "\n"))


def load_record(path):
    """A results record written by save_run, with a clear error when there is none."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}: run the notebook first")
    record = json.loads(path.read_text())
    missing = [k for k in ("model", "params", "history") if k not in record]
    if missing:
        raise ValueError(f"{path} is not a results file: it lacks {', '.join(missing)}")
    return record


def save_weights(model, path):
    """The state dict (moved to CPU), atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_weights(model, path, device="cpu"):
    """Load a state dict saved by save_weights into model (weights_only: no code is unpickled)."""
    state = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device)
