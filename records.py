"""The records of runs: writing and reading them, what made them, and whether they still hold.

A record holds whatever the run measured and a *probe*: the run's own model and recipe trained
for the recipe's whole schedule on 256 fixed training digits (2 steps an epoch, augmentation,
dropout and the weight average on), in float64 on one CPU thread, with what came out (the loss
of every epoch, the norm of every weight tensor).  The check re-runs the probe with the code of
the checkout: a refactor that keeps what the code computes keeps every record valid; a change to
what it computes (the augmentation, the loop, the schedule, a model) stales the records it
touches, and the check names them.  float64 keeps the order of floating-point sums (threads,
CPUs) far below the tolerance, which a real change of the computation exceeds by orders.
"""
import ast
import hashlib
import inspect
import json
import math
import os
import platform
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import torch

import model as models
import series
import utils

HERE = Path(__file__).resolve().parent
PROBE_IMAGES, PROBE_SEED = 256, 0  # the probe's training (and scoring) digits: the first 256 of each set
PROBE_RTOL = 1e-6                  # float64 sums in another order differ by ~1e-11 here; a change by >1e-3
PROBE_THREADS = 1                  # one CPU thread: the same order of sums on every machine
NOT_RECIPE = ("train_images", "test_images", "evaluated_on", "batch_norm")  # settings that describe the data


class RecordError(ValueError):
    """A file is not a record of this project, or lacks what a record must hold."""


# ----------------------------------------------------------------------------- files

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


def read_json(path):
    return json.loads(Path(path).read_text())


def evidence(name, repo=None, root="."):
    """One of the finished held-out records the notebooks cite (series.EVIDENCE: "ladder",
    "ablation"), read from root; where it is not there (Colab fetches only the library), it is
    downloaded first from the GitHub copy `repo` ("owner/name")."""
    path = Path(root) / series.EVIDENCE[name]
    if not path.is_file():
        if not repo or repo == "OWNER/REPO":
            raise RecordError(f"{series.EVIDENCE[name]} is not in {Path(root).resolve()}: run the notebook from the "
                              f"repository's root, or set `repo` in the parameters cell to the GitHub copy to read it from")
        path.parent.mkdir(parents=True, exist_ok=True)
        urllib.request.urlretrieve(f"https://raw.githubusercontent.com/{repo}/main/{series.EVIDENCE[name]}", path)
    return read_json(path)


def load_record(path):
    """A step's results record written by save_run, with a clear error when there is none."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}: run the notebook first")
    record = read_json(path)
    missing = [k for k in ("model", "params", "history") if k not in record]
    if missing:
        raise RecordError(f"{path} is not a results file: it lacks {', '.join(missing)}")
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


# ----------------------------------------------------------------------------- what made a record

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
    """sha256 of what Python code does: its syntax tree without docstrings.  Comments,
    docstrings, blank lines and line breaks leave it unchanged; any change to a statement, a
    name or a constant changes it.  source: the code's text (or a path to it)."""
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


def git_commit(folder=HERE):
    """The checkout's HEAD commit, or None outside a git checkout (Colab, a copy)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


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


def provenance(device):
    """Where and with what a run ran: the git commit, torch, the device and the CPU threads."""
    return dict(git_commit=git_commit(), torch=torch.__version__, device=device_name(device),
                threads=torch.get_num_threads())


def notebook_training_code(nb_path):
    """The fingerprint of a notebook's code up to and including its training (the first code cell
    that calls fit), without its parameters cell: the code that decides a run's numbers besides
    the library and the parameters.  Cells after training only show and save what it made."""
    return notebook_training_code_of(Path(nb_path).read_text(), Path(nb_path).name)


def notebook_training_code_of(text, name="the notebook"):
    """notebook_training_code of a notebook's JSON text."""
    code = []
    for cell in json.loads(text)["cells"]:
        tags = cell["metadata"].get("tags", [])
        if cell["cell_type"] != "code" or "parameters" in tags or "injected-parameters" in tags:
            continue
        source = "".join(cell["source"])
        code.append("\n".join(l for l in source.splitlines() if not l.lstrip().startswith(("%", "!"))))
        if "utils.fit(" in source:
            return fingerprint("\n".join(code))
    raise RecordError(f"{name} has no code cell that calls utils.fit(")


# ----------------------------------------------------------------------------- probes

def probe_spec(model_name, settings):
    """What a probe trains: the model class of model.py and the recipe part of the settings."""
    recipe = {k: v for k, v in settings.items() if k not in NOT_RECIPE}
    recipe = utils.check_recipe(recipe)
    cls = getattr(models, model_name)
    args = {"dropout": recipe["dropout"]} if "dropout" in inspect.signature(cls).parameters else {}
    return dict(model=model_name, model_args=args, recipe=recipe, images=PROBE_IMAGES, seed=PROBE_SEED)


_PROBES = {}  # spec (as JSON) -> outcome, so that one process runs each probe once


def run_probe(spec, data_dir=None):
    """Train the spec's model under its recipe's whole schedule on the first `images` training
    digits, scored on the first `images` test digits after every epoch, in float64 on one CPU
    thread; returns {train_loss, test_loss (per epoch), norms (of each weight tensor at the end)}."""
    key = json.dumps(spec, sort_keys=True)
    if key in _PROBES:
        return _PROBES[key]
    recipe, n = spec["recipe"], spec["images"]
    train_x, train_y = utils.load_mnist(data_dir, train=True)
    test_x, test_y = utils.load_mnist(data_dir, train=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(PROBE_THREADS)
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
            utils.set_seed(spec["seed"])
            train = utils.Loader(train_x[:n], train_y[:n], recipe["batch_size"], shuffle=True,
                                 degrees=recipe["degrees"], translate=recipe["translate"], scale=recipe["scale"],
                                 seed=spec["seed"], dtype=torch.float64)
            test = utils.Loader(test_x[:n], test_y[:n], n, dtype=torch.float64)
            net = utils.place(getattr(models, spec["model"])(**spec["model_args"]).double(), "cpu",
                              recipe["channels_last"])
            optimizer, scheduler = utils.make_optimizer(net, recipe, len(train))
            ema = utils.make_ema(net, recipe["ema_decay"]) if recipe["ema_decay"] else None
            history = utils.fit(net, train, test, optimizer, recipe["epochs"], scheduler, ema,
                                progress=False, log=lambda line: None)
            final = utils.evaluated_model(net, ema)
            norms = [v.norm().item() for v in final.state_dict().values() if v.is_floating_point()]
    finally:
        torch.set_num_threads(threads)
    _PROBES[key] = dict(train_loss=history["train_loss"], test_loss=history["test_loss"], norms=norms)
    return _PROBES[key]


def probe(model_name, settings, data_dir=None):
    """{spec, outcome}: the probe a record of this model and these settings keeps."""
    spec = probe_spec(model_name, settings)
    return dict(spec=spec, outcome=run_probe(spec, data_dir))


def probe_differs(kept, data_dir=None):
    """'' when the checkout's code reproduces a kept probe within PROBE_RTOL, else what differs."""
    now = run_probe(kept["spec"], data_dir)
    for key, then in kept["outcome"].items():
        if len(now[key]) != len(then):
            return f"{key}: {len(then)} values kept, {len(now[key])} now"
        for i, (a, b) in enumerate(zip(then, now[key])):
            if not math.isclose(a, b, rel_tol=PROBE_RTOL, abs_tol=1e-12):
                return f"{key}[{i}]: {a:.10g} kept, {b:.10g} now"
    return ""


def probes_of(path):
    """[(label, probe)] kept in a record file: its own, or one per recipe (a plan's record)."""
    data = read_json(path)
    if "probe" in data:
        return [("", data["probe"])]
    return [(f" ({name})", p) for name, p in sorted(data.get("probes", {}).items())]


def stale_records(paths, data_dir=None):
    """[(path, why)] for the record files whose probes this checkout's code no longer reproduces,
    or that keep no probe at all."""
    stale = []
    for path in paths:
        kept = probes_of(path)
        if not kept:
            stale.append((path, "keeps no probe"))
        for label, p in kept:
            why = probe_differs(p, data_dir)
            if why:
                stale.append((path, f"probe{label}: {why}"))
    return stale


def stale_message(stale, root=HERE):
    """One sentence naming the stale records and how to renew them."""
    return ("this checkout's code computes otherwise than the code that made "
            + "; ".join(f"{Path(p).resolve().relative_to(Path(root).resolve())} ({why})" for p, why in stale)
            + ". Re-run what made them (python run_notebooks.py for results/stepN.json, with --seeds for "
            "results/seeds.json; benchmarks/ladder.py and experiments/ for their records), or undo the change.")


# ----------------------------------------------------------------------------- a step's record

def make_record(model, history, seed, device, wall_seconds, settings, train_test=None, data_dir=None):
    """The JSON-ready record of one run: what it measured, where it ran, and its probe.
    train_test: the scores of the last weights on the training and the test digits, measured the
    same way (utils.train_test_scores)."""
    rows = utils.receptive_field(model)
    name = type(model).__name__
    return dict(model=name, params=utils.count_params(model), receptive_field=rows[-1]["rf"], rf_rows=rows,
                epochs=len(history["epoch"]), seed=seed, wall_seconds=round(wall_seconds, 1),
                **provenance(device), settings=settings, train_test=train_test or {},
                probe=probe(name, settings, data_dir), history=history)


def save_run(model, history, step, seed, device, wall_seconds, settings, train_test=None,
             results_dir="results", data_dir=None):
    """Write results/stepN.json and results/Model_N.pt; returns the record."""
    record = make_record(model, history, seed, device, wall_seconds, settings, train_test, data_dir)
    write_json(record, Path(results_dir) / f"step{step}.json")
    save_weights(model, Path(results_dir) / f"{record['model']}.pt")
    return record
