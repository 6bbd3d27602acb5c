"""What the notebooks show and keep of a run: layer tables, plots, the Result block and the
results files (stepN.json, Model_N.pt), each naming the code that made its numbers.

Nothing here decides a number of a run, so no record names this file: it can change without
re-running anything.  The code that does decide them, model.py and utils.py, is named by its
fingerprint (see `fingerprint`).
"""
import ast
import copy
import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import torch

import utils

HERE = Path(__file__).resolve().parent
CODE_FILES = ("model.py", "utils.py")  # the code a results file names by its fingerprint


# ----------------------------------------------------------------------------- provenance

def _canonical(node):
    """A syntax tree as text, leaving out empty fields (so that a field a newer Python adds,
    empty, changes nothing)."""
    if isinstance(node, ast.AST):
        fields = ", ".join(f"{k}={_canonical(v)}" for k, v in ast.iter_fields(node) if v is not None and v != [])
        return f"{type(node).__name__}({fields})"
    if isinstance(node, list):
        return "[" + ", ".join(_canonical(v) for v in node) + "]"
    return repr(node)


def fingerprint(source):
    """sha256 of what a Python module does: its syntax tree without docstrings.  Comments,
    docstrings, blank lines and line breaks leave it unchanged; any change to a statement, a
    name or a constant changes it.  source: the module's text (or a path to it)."""
    if isinstance(source, Path):
        source = source.read_text()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(_canonical(tree).encode()).hexdigest()


def code_fingerprints(root=HERE):
    """{file: fingerprint} of the code a record names, as it is under root now."""
    return {name: fingerprint(Path(root) / name) for name in CODE_FILES}


def git_state(folder, files=CODE_FILES):
    """(HEAD commit, whether folder's copies of files do what the committed ones do) for the
    git checkout that holds folder; (None, None) outside one (Colab)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, timeout=10,
                              check=True).stdout
    try:
        commit = git("rev-parse", "HEAD").decode().strip()
        same = all(fingerprint(git("show", f"HEAD:{name}").decode()) == fingerprint(Path(folder) / name)
                   for name in files)
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, same


def device_name(device):
    """The GPU's name, or the CPU's marketing name with its core count."""
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


def provenance(device, root=HERE):
    """What made a results file: the fingerprints of model.py and utils.py, the git commit (and
    whether those two files do what the committed ones do), torch, the device and the CPU threads."""
    commit, same = git_state(root)
    return dict(code_fingerprint=code_fingerprints(root), git_commit=commit, code_as_committed=same,
                torch=torch.__version__, device=device_name(device), threads=torch.get_num_threads())


def stale_records(root=HERE, folder="results"):
    """The results files under root/folder that name other code than root's model.py and
    utils.py: [(file name, the files whose fingerprint differs)]."""
    now = code_fingerprints(root)
    stale = []
    for path in sorted((Path(root) / folder).glob("*.json")):
        named = json.loads(path.read_text()).get("code_fingerprint") or {}
        differ = [name for name in CODE_FILES if named.get(name) != now[name]]
        if differ:
            stale.append((path.name, differ))
    return stale


def stale_message(stale, folder="results"):
    """One sentence naming the stale records and how to renew them."""
    return ("made by other code than this checkout's (fingerprints differ): "
            + "; ".join(f"{folder}/{name} ({', '.join(files)})" for name, files in stale)
            + ". Re-run what made them (python run_notebooks.py, with --seeds for seeds.json and "
            "holdout.json, and benchmarks/pipeline.py for benchmark.json).")


# ----------------------------------------------------------------------------- results files

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
    """The state dict (moved to CPU, in the standard layout), atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_weights(model, path, device="cpu"):
    """Load a state dict saved by save_weights into model (weights_only: no code is unpickled)."""
    state = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device)


def make_record(model, history, seed, device, wall_seconds, settings=None, train_test=None):
    """The JSON-ready record of one run, with what made it (provenance).  train_test: the
    scores of the last weights on the training and the test digits, measured the same way
    (utils.train_test_scores)."""
    rows = utils.receptive_field(model)
    return dict(model=type(model).__name__, params=utils.count_params(model),
                receptive_field=rows[-1]["rf"], rf_rows=rows,
                epochs=len(history["epoch"]), seed=seed, wall_seconds=round(wall_seconds, 1),
                **provenance(device), settings=settings or {}, train_test=train_test or {},
                history=history)


def save_run(model, history, step, seed, device, wall_seconds, settings=None, train_test=None,
             results_dir="results"):
    """Write results/stepN.json and results/Model_N.pt; returns the record."""
    record = make_record(model, history, seed, device, wall_seconds, settings, train_test)
    write_json(record, Path(results_dir) / f"step{step}.json")
    save_weights(model, Path(results_dir) / f"{record['model']}.pt")
    return record


# ----------------------------------------------------------------------------- text

def score_history(history, window=utils.WINDOW, target=utils.TARGET):
    """Best train/test accuracy with their epochs, and the last `window` test accuracies."""
    def best(key):
        i = max(range(len(history[key])), key=lambda j: (history[key][j], -j))
        return history[key][i], history["epoch"][i]
    last = history["test_acc"][-window:]
    (best_train, best_train_epoch), (best_test, best_test_epoch) = best("train_acc"), best("test_acc")
    return dict(best_train=best_train, best_train_epoch=best_train_epoch, best_test=best_test,
                best_test_epoch=best_test_epoch, last=last, min_last=min(last),
                consistent=len(last) == window and min(last) >= target)


# Each step's own target, judged in its Result block beside the assignment's bar
STEP_TARGETS = {
    1: ("a best test accuracy of at least 99.0%", lambda r, s: s["best_test"] >= 99.0),
    2: ("fewer than 8,000 parameters, with Step 1's layers and training", lambda r, s: r["params"] < 8000),
    3: None,  # the assignment's bar itself
}


def while_training(settings):
    """How the epoch lines' train accuracy was measured, from the recorded settings."""
    parts = ["augmented digits" if any(settings.get(k) for k in ("degrees", "translate", "scale")) else "",
             "dropout on" if settings.get("dropout") else "",
             "the live weights, not their average" if settings.get("ema_decay") else "the live weights"]
    return ", ".join(p for p in parts if p)


def result_markdown(record, window=utils.WINDOW, target=utils.TARGET):
    """The Result block of a step, written from its results record (never by hand)."""
    s = score_history(record["history"], window, target)
    last = ", ".join(f"{a:.2f}" for a in s["last"])
    step = int(record["model"].rsplit("_", 1)[-1])
    bar = f"the assignment's bar, >= {target}% in each of the last {window} epochs"
    own = STEP_TARGETS.get(step)
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
    from torchsummary import summary
    summary(copy.deepcopy(model).cpu(), input_size, device="cpu")


# ----------------------------------------------------------------------------- plots

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
        fig.savefig(path, dpi=90)
    return fig


def plot_history(history, path=None, target=utils.TARGET, title=""):
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


def plot_seeds(record, path=None, target=utils.TARGET, window=utils.WINDOW):
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
        ax.set(xlabel="epoch", ylabel="accuracy (%)")
        ax.grid(alpha=0.3)
    full.set(title="every epoch")
    zoom.set(title=f"last {window} epochs", xlim=(n - window + 0.5, n + 0.5),
             ylim=(min(min(lows), target) - 0.1, 99.8))
    zoom.legend(fontsize=7, loc="lower left", ncol=4)
    fig.suptitle(f"{record['model']}, {record['params']:,} parameters: accuracy per seed "
                 f"({record.get('settings', {}).get('evaluated_on', 'test set')})")
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
            ax.imshow((x[i, 0] * utils.STD + utils.MEAN).cpu(), cmap="gray_r")
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


def plot_plan(record, path=None):
    """A plan of benchmarks/search.py, seed by seed: each recipe's per-seed minimum over the last
    epochs (dots, one line per seed across the recipes) and its mean (a bar)."""
    import matplotlib.pyplot as plt
    names = [n for n in record["recipes"] if n in record["summary"]]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(names)) + 1.5, 4))
    seeds = sorted({int(s) for n in names for s in record["runs"][n]})
    lows = {n: {int(s): 100 * min(r["correct"][-record["window"]:]) / record["held_out_images"]
                for s, r in record["runs"][n].items()} for n in names}
    low = max(98, min(min(v.values()) for v in lows.values()) - 0.1)
    for seed in seeds:  # a seed below the scale breaks its line there (said on the plot, below)
        shown = [lows[n].get(seed) if lows[n].get(seed, low) >= low else None for n in names]
        ax.plot(range(len(names)), shown, "o-", ms=4, lw=0.7, alpha=0.6, label=f"seed {seed}")
    ax.bar(range(len(names)), [record["summary"][n]["mean_min"] - 98 for n in names], bottom=98,
           color="lightgrey", width=0.5, label="mean")
    ax.axhline(record["target"], color="red", ls="--", lw=1, label=f"{record['target']}%")
    ax.set_xticks(range(len(names)), [n.replace("_", " ") for n in names], rotation=20, ha="right")
    ax.set(ylabel=f"minimum held-out accuracy, last {record['window']} epochs (%)",
           ylim=(low, 99.7), title=f"benchmarks/search.py {record['plan']}")
    for i, n in enumerate(names):  # what the scale leaves out is said on it
        off = sum(v < low for v in lows[n].values())
        gone = len(record.get("diverged", {}).get(n, []))
        note = ", ".join(t for t in (f"{off} below {low:g}%" if off else "", f"{gone} diverged" if gone else "") if t)
        if note:
            ax.annotate(note, (i, low), xytext=(0, 4), textcoords="offset points", ha="center", fontsize=7, color="red")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return save_figure(fig, path)
