"""What the notebooks and the documents say of a run, written from its record: the Result block,
the scores it judges, the layer and receptive-field tables.  Nothing here decides a number of a run.
"""
import copy
import math
from decimal import ROUND_HALF_UP, Decimal

from torchsummary import summary

import series


# ----------------------------------------------------------------------------- text

def score_history(history, window=series.WINDOW, target=series.TARGET):
    """Best train/test accuracy with their epochs, and the last `window` test accuracies."""
    def best(key):
        i = max(range(len(history[key])), key=lambda j: (history[key][j], -j))
        return history[key][i], history["epoch"][i]
    last = history["test_acc"][-window:]
    (best_train, best_train_epoch), (best_test, best_test_epoch) = best("train_acc"), best("test_acc")
    return dict(best_train=best_train, best_train_epoch=best_train_epoch, best_test=best_test,
                best_test_epoch=best_test_epoch, last=last, min_last=min(last),
                consistent=len(last) == window and min(last) >= target)


def while_training(settings):
    """How the epoch lines' train accuracy was measured, from the recorded settings."""
    parts = ["augmented digits" if any(settings.get(k) for k in ("degrees", "translate", "scale")) else "",
             "dropout on" if settings.get("dropout") else "",
             "the live weights, not their average" if settings.get("ema_decay") else "the live weights"]
    return ", ".join(p for p in parts if p)


def result_markdown(record, window=series.WINDOW, target=series.TARGET):
    """The Result block of a step, written from its results record (never by hand)."""
    s = score_history(record["history"], window, target)
    last = ", ".join(f"{a:.2f}" for a in s["last"])
    step = int(record["model"].rsplit("_", 1)[-1])
    bar = f"the assignment's bar, >= {target}% in each of the last {window} epochs"
    own = series.STEP_TARGETS.get(step)
    lines = [
        f"- Parameters: {record['params']:,} (receptive field {record['receptive_field']})",
        f"- Test accuracy: best {s['best_test']:.2f}% (epoch {s['best_test_epoch']}); last {len(s['last'])} "
        f"epochs {last} (%), min {s['min_last']:.2f}%",
        f"- Train accuracy while training ({while_training(record.get('settings', {}))}): best "
        f"{s['best_train']:.2f}% (epoch {s['best_train_epoch']})",
    ]
    tt = record.get("train_test") or {}
    if tt:
        lines.append(f"- The weights at the end, both scored in eval mode: train {tt['train_acc']:.2f}%, test "
                     f"{tt['test_acc']:.2f}% (gap {tt['train_acc'] - tt['test_acc']:+.2f} pt)")
    if own:
        lines.append(f"- This step's target, {own[0]}: {'met' if own[1](record, s) else 'not met'}")
        lines.append(f"- {bar[0].upper() + bar[1:]}: {'met' if s['consistent'] else 'not met'} in this run")
    else:
        lines.append(f"- This step's target is {bar}: {'met' if s['consistent'] else 'not met'} in this run")
    epochs_s = sum(record["history"].get("seconds", []))
    lines.append(f"- {record['epochs']} epochs, seed {record['seed']}, on {record['device']}, {record['threads']} CPU "
                 f"thread{'s' if record['threads'] != 1 else ''}: {epochs_s:.0f} s in the epochs, "
                 f"{record['wall_seconds']:.0f} s with the final scoring and saving")
    return "\n".join(lines)


def format_rf_table(rows):
    """Receptive-field rows (utils.receptive_field) as a fixed-width text table."""
    lines = [f"{'layer':<8} {'output (CxHxW)':>15} {'k':>3} {'s':>3} {'jump':>5} {'RF':>4}"]
    for r in rows:
        out = "x".join(str(v) for v in r["output"])
        lines.append(f"{r['layer']:<8} {out:>15} {r['kernel']:>3} {r['stride']:>3} "
                     f"{r['jump']:>5} {r['rf']:>4}")
    return "\n".join(lines)


def print_layers(model, input_size=(1, 28, 28)):
    """Print torchsummary's layer table (of a CPU copy, so any device works)."""
    summary(copy.deepcopy(model).cpu(), input_size, device="cpu")


PLAN_LABELS = {"full": "the adopted recipe, whole", "no_batch_norm": "no batch norm (plain convs with biases)",
               "no_dropout": "no dropout", "no_augmentation": "no rotation, shift or zoom",
               "no_schedule": "a constant learning rate of 0.01, no schedule",
               "no_weight_average": "no weight average"}


def plan_label(record, name):
    """How the tables and plots of a plan's record name one of its recipes."""
    if record["plan"] != "ablation":
        return name
    base = record["recipe_settings"]["full"]["settings"]
    if name == "no_augmentation" and not base.get("scale"):
        return "no rotation or shift"  # the recipe has no zoom to leave out
    return PLAN_LABELS.get(name, name)


def summarize(runs, baseline, images, window=series.WINDOW, target=series.TARGET):
    """Held-out runs {recipe: {seed: {"correct": [digits per epoch]}}} summarised per recipe: the
    mean of the per-seed minimums over the last `window` epochs, the paired difference from the
    baseline on the same seeds with its standard error, seeds at the bar, the worst seed (all
    counted in whole digits of `images`, given in %)."""
    bar = math.ceil(target * images / 100)
    lows = {name: {seed: min(r["correct"][-window:]) for seed, r in by_seed.items()} for name, by_seed in runs.items()}
    out = {}
    for name, low in lows.items():
        row = dict(seeds=sorted(int(s) for s in low), mean_min=100 * sum(low.values()) / len(low) / images,
                   at_bar=sum(v >= bar for v in low.values()), worst=100 * min(low.values()) / images)
        base = lows.get(baseline, {})
        paired = [low[s] - base[s] for s in low if s in base]
        if name != baseline and len(paired) > 1:
            mean = sum(paired) / len(paired)
            sd = math.sqrt(sum((d - mean) ** 2 for d in paired) / (len(paired) - 1))
            row.update(paired_diff=100 * mean / images, paired_se=100 * sd / math.sqrt(len(paired)) / images,
                       paired_seeds=len(paired))
        out[name] = row
    return out

def fixed(value, places=3, sign=False):
    """value to `places` decimals with halves rounded away from zero, as by hand (0.0375 -> 0.038):
    the plans' figures are exact decimals (whole digits over 10,000 images) that a float holds
    only nearly, so plain formatting would round some halves down and others up."""
    text = str(Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))
    return ("+" + text if sign and not text.startswith("-") else text)


MEASURES = {  # what a change does to the last `window` epochs of a held-out run, in points
    "minimum": min,                                 # the bar's measure
    "level": lambda acc: sum(acc) / len(acc),       # their mean: how high the run sits
    "span": lambda acc: max(acc) - min(acc),        # their max - min: how unsettled it is
}


def changes(record, pairs, window=series.WINDOW):
    """What each change does over a held-out record's seeds: for each (before, after) pair of its
    recipes, the paired difference after - before on the seeds both finished, of each of MEASURES,
    as (mean, standard error).  Counted in whole digits, so the figures are exact."""
    images, out = record["held_out_images"], []
    for before, after in pairs:
        a, b = record["runs"].get(before, {}), record["runs"].get(after, {})
        seeds = [s for s in a if s in b]
        row = dict(before=before, after=after, seeds=len(seeds))
        for name, measure in MEASURES.items():
            d = [100 * (measure(b[s]["correct"][-window:]) - measure(a[s]["correct"][-window:])) / images for s in seeds]
            mean = sum(d) / len(d)
            se = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1) / len(d)) if len(d) > 1 else float("nan")
            row[name] = (mean, se)
        out.append(row)
    return out


def format_changes(record, pairs, window=series.WINDOW):
    """changes() as a text table, one row per change; * marks a difference more than twice its
    standard error (beyond noise)."""
    name = lambda n: ("whole" if n == "full" else plan_label(record, n)) if record["plan"] == "ablation" else n
    cell = lambda m, se: f"{fixed(m, sign=True)} +- {fixed(se)}{' *' if abs(m) > 2 * se else '  '}"
    rows = changes(record, pairs, window)
    width = max(len(f"{name(r['before'])} -> {name(r['after'])}") for r in rows)
    lines = [f"{'change':<{width}}  seeds  {'minimum':<17}  {'level (mean)':<17}  span (max - min)",
             f"{'':<{width}}         over the last {window} epochs, points; * beyond noise (> 2 standard errors)"]
    for r in rows:
        lines.append(f"{name(r['before']) + ' -> ' + name(r['after']):<{width}}  {r['seeds']:>5}  "
                     + "  ".join(cell(*r[m]) for m in MEASURES))
    return "\n".join(lines)
