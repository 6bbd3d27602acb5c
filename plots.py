"""The pictures of the series: curves, seeds, augmented and misclassified digits, the plans'
seed-by-seed plots.  Nothing here decides a number of a run.
"""
import math
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import report
import series
import utils


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
    images = (torch.cat(images)[:limit, 0] * utils.STD + utils.MEAN).cpu()
    return images, torch.cat(truth)[:limit].cpu(), torch.cat(preds)[:limit].cpu()


def save_figure(fig, path=None):
    """Save fig as a PNG at path (creating its folder), if a path is given; returns fig."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
    return fig


DPI = 150                 # sharp at the width GitHub shows a picture
ACC_RANGE = (97.0, 100.0)  # every step's accuracy on one scale: 99.0 against 99.5 and the bar readable
LOSS_RANGE = (0.01, 1.0)   # every step's loss on one (log) scale, ticks as plain numbers


def mark_window(ax, epochs, window=series.WINDOW, target=series.TARGET):
    """The bar as a dashed line and the last `window` epochs, the ones it judges, shaded."""
    ax.axhline(target, color="red", ls="--", lw=1, label=f"bar {target}%")
    ax.axvspan(epochs - window + 0.5, epochs + 0.5, color="gold", alpha=0.15, label=f"last {window} epochs")


def below_scale(ax, epochs, values, low, row=0, color="grey"):
    """Points under the scale drawn on its floor as open triangles, their value beside them
    (row: which line of labels, so that several curves' labels do not overlap)."""
    for e, v in zip(epochs, values):
        if v < low:
            ax.plot(e, low + 0.04, "v", mfc="none", color=color, ms=6)
            ax.annotate(f"{v:.2f}", (e, low + 0.04), xytext=(5, 2 + 9 * row), textcoords="offset points",
                        fontsize=7, color=color)


def plain_log_axis(ax, low, high):
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0) if low <= t <= high]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()


def plot_history(history, title, path=None, recipe=None, steps_per_epoch=None):
    """One step's curves on the scales every step shares: loss per epoch (train and test, log
    scale) and accuracy per epoch (the bar and the last epochs it judges marked; points below
    the scale shown on its floor).  When the run kept a weight average (history has the live
    weights' test scores), the live weights' test accuracy is drawn beside the average's; with
    recipe and steps_per_epoch a third panel draws the learning rate of every step."""
    panels = 3 if recipe else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.6))
    ax_loss, ax_acc = axes[0], axes[1]
    e, n = history["epoch"], len(history["epoch"])
    averaged = "test_acc_live" in history
    ax_loss.plot(e, history["train_loss"], "o-", ms=3, label="train (while training)")
    ax_loss.plot(e, history["test_loss"], "o-", ms=3, label="test" + (" (weight average)" if averaged else ""))
    plain_log_axis(ax_loss, *LOSS_RANGE)
    ax_loss.set(xlabel="epoch", ylabel="loss (NLL)", title="loss")
    curves = [("train_acc", "train (while training)"), ("test_acc", "test" + (" (weight average)" if averaged else ""))]
    if averaged:
        curves.append(("test_acc_live", "test (live weights)"))
    for row, (key, label) in enumerate(curves):
        line, = ax_acc.plot(e, history[key], "o-" if key != "test_acc_live" else "s--", ms=3, label=label)
        below_scale(ax_acc, e, history[key], ACC_RANGE[0], row, line.get_color())
    mark_window(ax_acc, n)
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy", ylim=ACC_RANGE)
    for ax in (ax_loss, ax_acc):
        ax.set_xticks(range(1, n + 1, 2 if n > 8 else 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if recipe:
        lrs = lr_per_step(recipe, steps_per_epoch)
        ax = axes[2]
        ax.plot([1 + i / steps_per_epoch for i in range(len(lrs))], lrs, lw=1.2)
        ax.set(xlabel="epoch", ylabel="learning rate", title=f"learning rate ({recipe['schedule']})")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def lr_per_step(recipe, steps_per_epoch):
    """The learning rate of every training step under a recipe (make_optimizer's schedule)."""
    holder = torch.nn.Module()  # one parameter, made without drawing a random number
    holder.weight = torch.nn.Parameter(torch.zeros(1))
    optimizer, scheduler = utils.make_optimizer(holder, recipe, steps_per_epoch)
    lrs = []
    for _ in range(recipe["epochs"] * steps_per_epoch):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return lrs


def steps_curves(step_records, path=None, target=series.TARGET, window=series.WINDOW):
    """The three steps' test accuracy per epoch on one axis, the bar and the last epochs marked."""
    fig, ax = plt.subplots(figsize=(8, 3.8))
    n = 0
    for row, (step, r) in enumerate(step_records.items()):
        acc = r["history"]["test_acc"]
        n = max(n, len(acc))
        line, = ax.plot(range(1, len(acc) + 1), acc, "o-", ms=4,
                        label=f"Step {step}: {r['model']}, {r['params']:,} params (min of last {window}: "
                              f"{min(acc[-window:]):.2f}%)")
        below_scale(ax, range(1, len(acc) + 1), acc, ACC_RANGE[0], row, line.get_color())
    mark_window(ax, n, window, target)
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", ylim=ACC_RANGE,
           title="Test accuracy per epoch, the three steps (seed 1)")
    ax.set_xticks(range(1, n + 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


@torch.no_grad()
def confusion(model, loader):
    """(10, 10) counts of (true digit, predicted digit) over the loader, in eval mode."""
    model.eval()
    counts = torch.zeros(10, 10, dtype=torch.long)
    for x, y in loader:
        p = model(x).argmax(1)
        counts += torch.bincount((y * 10 + p).cpu(), minlength=100).view(10, 10)
    return counts


def plot_confusion(model, loader, title, path=None):
    """The test digits the model gets wrong, as a matrix of (true, predicted) counts with the
    diagonal left out, and the errors of each true digit on the right."""
    counts = confusion(model, loader)
    errors = counts.clone()
    errors.fill_diagonal_(0)
    total, n = int(errors.sum()), int(counts.sum())
    fig, ax = plt.subplots(figsize=(6.2, 5))
    top = max(1, int(errors.max()))
    ax.imshow(errors, cmap="Reds", vmin=0, vmax=top)
    for t in range(10):
        for p in range(10):
            if t != p and errors[t, p]:
                ax.text(p, t, str(int(errors[t, p])), ha="center", va="center", fontsize=8,
                        color="white" if errors[t, p] > top / 2 else "black")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10), [f"{t}  ({int(errors[t].sum())} wrong)" for t in range(10)])
    ax.set(xlabel="predicted digit", ylabel="true digit  (errors of each)",
           title=f"{title}: {total:,} of {n:,} test digits wrong")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_receptive_field(model, loader, path=None, index=0):
    """A test digit with the receptive field of the centre unit after each block drawn on it:
    the input pixels that unit sees (utils.receptive_field; every conv is unpadded, so unit i
    of a map sees the pixels from i * jump on, rf wide)."""
    if any(getattr(m, "padding", (0, 0)) not in ((0, 0), 0) for m in model.modules() if isinstance(m, torch.nn.Conv2d)):
        raise ValueError("plot_receptive_field draws unpadded convs only")
    rows = utils.receptive_field(model)
    x = next(iter(loader))[0][index, 0] * utils.STD + utils.MEAN
    pool = next(i for i, r in enumerate(rows) if r["layer"].startswith("pool"))
    gap = next(i for i, r in enumerate(rows) if r["layer"].startswith("gap"))
    chosen = [(rows[pool - 1], "block 1"), (rows[pool], "max-pool"), (rows[gap - 1], "block 2"), (rows[gap], "output")]
    fig, axes = plt.subplots(1, len(chosen), figsize=(2.6 * len(chosen), 3.1), layout="constrained")
    for ax, (row, name) in zip(axes, chosen):
        size = row["output"][-1]
        start = (size // 2) * row["jump"] if row["layer"][:3] != "gap" else 0
        ax.imshow(x.cpu(), cmap="gray_r", extent=(-0.5, 27.5, 27.5, -0.5))
        ax.add_patch(plt.Rectangle((start - 0.5, start - 0.5), row["rf"], row["rf"], fill=True, alpha=0.25,
                                   color="tab:blue"))
        ax.add_patch(plt.Rectangle((start - 0.5, start - 0.5), row["rf"], row["rf"], fill=False, lw=2,
                                   color="tab:blue"))
        ax.set(xlim=(-1, 28), ylim=(28, -1), xticks=[], yticks=[],
               title=f"after {name} ({row['layer']})\nRF {row['rf']}x{row['rf']}, map {size}x{size}")
    return save_figure(fig, path)


def plot_seeds(record, path=None, target=series.TARGET, window=series.WINDOW):
    """A seeds record: each seed's minimum over the last epochs, seed by seed (left), and every
    seed's whole curve with the worst one drawn out (right)."""
    fig, (lows, curves) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw=dict(width_ratios=[1, 1.3]))
    rows = record["seeds"]
    n, images = record["epochs"], record.get("test_images", 10000)
    worst = min(rows, key=lambda r: (r["min_last"], r["seed"]))
    for i, r in enumerate(rows):
        ok = r["min_last"] >= target
        lows.plot(r["min_last"], i, "o", color="tab:green" if ok else "tab:red", ms=6)
        lows.annotate(f"{r['min_last']:.2f}", (r["min_last"], i), xytext=(6, -3), textcoords="offset points", fontsize=7)
    lows.axvline(target, color="red", ls="--", lw=1)
    lows.set_yticks(range(len(rows)), [f"seed {r['seed']}" for r in rows], fontsize=7)
    lows.invert_yaxis()
    held = sum(r["min_last"] >= target for r in rows)
    lows.set(xlabel=f"minimum test accuracy over the last {window} epochs (%)",
             xlim=(min(target, worst["min_last"]) - 0.05, max(r["min_last"] for r in rows) + 0.08),
             title=f"{held} of {len(rows)} seeds at or above {target}% in each of the last {window}")
    lows.grid(alpha=0.3, axis="x")
    for r in rows:
        curves.plot(range(1, n + 1), r["test_acc"], "-", color="grey", lw=0.8, alpha=0.5)
    tied = sum(r["min_last"] == worst["min_last"] for r in rows)
    curves.plot(range(1, n + 1), worst["test_acc"], "o-", color="tab:red", ms=3, lw=1.5,
                label=f"seed {worst['seed']}, the lowest minimum ({round(worst['min_last'] * images / 100):,} of "
                      f"{images:,}" + (f"; {tied} seeds have it)" if tied > 1 else ")"))
    mark_window(curves, n, window, target)
    curves.set(xlabel="epoch", ylabel="test accuracy (%)", ylim=(98.8, 99.8), title=f"every seed's curve ({len(rows)} lines)")
    curves.set_xticks(range(1, n + 1, 2))
    curves.grid(alpha=0.3)
    curves.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{record['model']}, {record['params']:,} parameters, one run per seed "
                 f"({record.get('settings', {}).get('evaluated_on', 'test set')})")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_augmented(loader, path=None, n=10):
    """The first n digits of one training batch: each original above the digit the model sees
    (augmented, normalised).  It draws the batch as training would (one reshuffle and one
    augmentation from the loader's generator) and reads the originals from the same order."""
    state = loader.generator.get_state()
    x, y = next(iter(loader))
    order = torch.randperm(len(loader.labels), generator=torch.Generator().set_state(state))
    originals = loader.images[order[:n].to(loader.images.device)]
    fig, axes = plt.subplots(2, n, figsize=(n * 1.05, 2.6))
    for i in range(n):
        axes[0, i].imshow(originals[i].cpu(), cmap="gray_r")
        axes[0, i].set_title(str(y[i].item()), fontsize=9)
        axes[1, i].imshow((x[i, 0] * utils.STD + utils.MEAN).cpu(), cmap="gray_r")
    for ax in axes.flat:
        ax.set(xticks=[], yticks=[])
    axes[0, 0].set_ylabel("original", fontsize=9)
    axes[1, 0].set_ylabel("augmented", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_misclassified(images, truth, preds, path=None, cols=10):
    """A grid of wrongly classified digits titled 'true -> predicted'."""
    rows = max(1, math.ceil(len(images) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.3))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap="gray_r")
            ax.set_title(f"{truth[i]} -> {preds[i]}", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_plan(record, path=None):
    """A plan's record, seed by seed against its baseline (the whole recipe, or the present one):
    each recipe's per-seed minimum minus the baseline's on the same seed (one colour per seed),
    their mean with twice its standard error, and the recipes that failed said as such."""
    base = "full" if record["plan"] == "ablation" else "present"
    names = [n for n in record["recipes"] if n != base]
    window, images = record["window"], record["held_out_images"]
    low = {n: {s: 100 * min(r["correct"][-window:]) / images for s, r in record["runs"].get(n, {}).items()}
           for n in record["recipes"]}
    seeds = [str(s) for s in record["seeds"]]
    colors = plt.get_cmap("tab10" if len(seeds) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 3.5, 4.2))
    labelled = False
    for i, n in enumerate(names):
        failed = len(record.get("diverged", {}).get(n, [])) + sum(v < 20 for v in low[n].values())
        if failed == len(seeds):  # nothing to pair: the recipe did not train
            ax.annotate(f"failed on all {len(seeds)}\n(loss NaN or\naccuracy near chance)", (i, 0), ha="center",
                        va="center", fontsize=8, color="tab:red")
            continue
        diffs = [(j, low[n][s] - low[base][s]) for j, s in enumerate(seeds) if s in low[n] and s in low[base]]
        for j, d in diffs:
            ax.plot(i + (j - len(seeds) / 2) * 0.03, d, "o", ms=5, color=colors(j),
                    label=None if labelled else f"seed {seeds[j]}")
        row = record["summary"][n]
        ax.errorbar(i + 0.22, row["paired_diff"], yerr=2 * row["paired_se"], fmt="D", color="black", ms=6, capsize=4,
                    label=None if labelled else "mean, +- 2 standard errors")
        labelled = True
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_xticks(range(len(names)), [report.plan_label(record, n) for n in names], rotation=15, ha="right", fontsize=8)
    ax.set(ylabel=f"points against the {'whole' if base == 'full' else 'present'} recipe, same seed",
           title=f"{record['plan']}: each seed's minimum over the last {window} epochs, held-out digits")
    ax.grid(alpha=0.3, axis="y")
    if labelled:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return save_figure(fig, path)


def plot_ladder(record, path=None):
    """The ladder's rungs over the same held-out seeds: each seed's minimum over the last epochs
    (one line per seed across the rungs) with the rungs' means (left), and how well each rung
    fits: its end-of-training accuracy in eval mode on its training digits beside the held-out
    ones (right)."""
    names, window, images = record["recipes"], record["window"], record["held_out_images"]
    low = {n: {s: 100 * min(r["correct"][-window:]) / images for s, r in record["runs"].get(n, {}).items()} for n in names}
    fig, (ax, fit) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw=dict(width_ratios=[1.4, 1]))
    colors = plt.get_cmap("tab10")
    for j, s in enumerate(str(s) for s in record["seeds"]):
        ax.plot(range(len(names)), [low[n].get(s) for n in names], "o-", ms=4, lw=0.8, alpha=0.7, color=colors(j % 10),
                label=f"seed {s}")
    ax.plot(range(len(names)), [record["summary"].get(n, {}).get("mean_min") for n in names], "D", color="black", ms=8,
            label="mean")
    ax.axhline(record["target"], color="red", ls="--", lw=1, label=f"bar {record['target']}%")
    ax.set_xticks(range(len(names)), [f"{n}\n{record['params'][n]:,} params" for n in names], fontsize=8)
    ax.set(ylabel=f"minimum held-out accuracy, last {window} epochs (%)",
           title="each seed's minimum, rung by rung (held-out digits)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    fitted = [n for n in names if any(r.get("end") for r in record["runs"].get(n, {}).values())]
    for k, (key, label) in enumerate((("train_acc", "training digits"), ("test_acc", "held-out digits"))):
        means = [sum(r["end"][key] for r in record["runs"][n].values()) / len(record["runs"][n]) for n in fitted]
        fit.bar([i + (k - 0.5) * 0.38 for i in range(len(fitted))], means, width=0.38, label=label)
        for i, m in enumerate(means):
            fit.annotate(f"{m:.2f}", (i + (k - 0.5) * 0.38, m), xytext=(0, 2), textcoords="offset points", ha="center",
                         fontsize=7)
    fit.set_xticks(range(len(fitted)), fitted, fontsize=8)
    lo = min([r["end"]["test_acc"] for n in fitted for r in record["runs"][n].values()] + [99.0]) - 0.3
    fit.set(ylim=(lo, 100), ylabel="accuracy at the end, eval mode (%)", title="fit: mean over the seeds")
    fit.grid(alpha=0.3, axis="y")
    fit.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return save_figure(fig, path)
