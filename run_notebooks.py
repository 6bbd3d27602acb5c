"""Run the three-step notebook series headlessly with papermill.

    python run_notebooks.py                       # all three steps, full runs, in place
    python run_notebooks.py --steps 3 --quick     # one epoch on 2,000 images, into runs/quick
    python run_notebooks.py --steps 3 --seeds 1 2 3 --jobs 2   # Step 3 per seed -> results/seeds.json
    python run_notebooks.py --steps 3 --seeds 1 2 3 --jobs 2 --resume   # the same, keeping seeds already run
    python run_notebooks.py --steps 3 --holdout 10000 --out runs/held   # score on held-out training images
    python run_notebooks.py --check               # graders: re-score the saved models, check every claim
    python run_notebooks.py --repo OWNER/NAME     # point the Colab badges and cells at a fork
    python run_notebooks.py --readme              # only rewrite the README's generated sections

Each notebook runs in a staging folder; only a step that finished replaces its notebook and
results (each file by an atomic rename), so a failed or interrupted run (Ctrl-C, kill) leaves
the committed files as they were.  A failure names the notebook and shows the tail of the error.
"""
import argparse
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

import check_claims
import plots
import records
import series
import sync_docs
import utils
from series import EVIDENCE, LIBRARY, NOTEBOOKS, TARGET, WINDOW

ROOT = Path(__file__).resolve().parent
EPOCH_LINE = re.compile(r"^epoch +\d+ \| lr .*$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PLACEHOLDER_REPO = "OWNER/REPO"


class NotebookFailed(RuntimeError):
    """A notebook did not run to the end, or ran without writing its results."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived while notebooks were running."""


# ----------------------------------------------------------------------------- processes

class Children:
    """The papermill processes running now, so that an interrupt can stop them and their kernels."""

    def __init__(self):
        self.procs, self.lock = set(), threading.Lock()

    def add(self, proc):
        with self.lock:
            self.procs.add(proc)

    def discard(self, proc):
        with self.lock:
            self.procs.discard(proc)

    def kill_all(self):
        with self.lock:
            procs = list(self.procs)
        for proc in procs:
            kill_tree(proc.pid)


CHILDREN = Children()
RUNNING = set()  # labels of the steps running now, named when a run is interrupted
STOPPING = threading.Event()  # set on an interrupt or a failure: start no further notebook


def descendants(pid):
    """Every process below pid (kernels start in a session of their own, so a process group
    would miss them)."""
    try:
        out = subprocess.run(["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    children = collections.defaultdict(list)
    for line in out.splitlines():
        p, pp = line.split()
        children[int(pp)].append(int(p))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead, only not yet reaped
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return True


def kill_tree(pid, grace=3.0):
    """SIGTERM pid and everything below it, then SIGKILL what is left after `grace` seconds."""
    pids = [pid] + descendants(pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)


def echo_line(*args):
    """print, flushed at once: the console shows each epoch line as it comes, even when it is a
    file or a pipe."""
    print(*args, flush=True)


def stop():
    """Start no further notebook and stop the running ones with their kernels."""
    STOPPING.set()
    CHILDREN.kill_all()


def raise_interrupted(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


# ----------------------------------------------------------------------------- one notebook

# Started in place of `python -m papermill`: on Linux papermill then gets SIGTERM when the runner
# dies, even by SIGKILL (which no handler sees), and its kernel exits once its parent is gone.
DIE_WITH_RUNNER = (
    "import ctypes, os, signal, sys\n"
    "if sys.platform.startswith('linux'):\n"
    "    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "    if os.getppid() != int(sys.argv[1]):\n"
    "        sys.exit('the runner stopped before papermill started')\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'papermill', *sys.argv[2:]])\n")


def clear_stale_stages(dest):
    """Remove staging folders left behind by runners that were killed outright (kill -9)."""
    for old in Path(dest).glob(".staging-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)


def execute(src, stage, parameters=None, on_line=echo_line, timeout=None, env=None):
    """Run notebook src into the folder stage through papermill (a child process), with stage
    as the working directory; each printed line goes to on_line.  Returns the seconds it took;
    raises NotebookFailed with the tail of the error when the notebook does not run to the end."""
    stage = Path(stage)
    for name in LIBRARY:  # the notebook imports the library from its working directory
        shutil.copy2(ROOT / name, stage / name)
    for name in EVIDENCE.values():  # and reads these records from there
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, stage / name)
    dst = stage / Path(src).name
    cmd = [sys.executable, "-c", DIE_WITH_RUNNER, str(os.getpid()),  # i.e. python -m papermill
           str(ROOT / src), str(dst), "--cwd", str(stage), "-k", "python3", "--no-progress-bar",
           "--stdout-file", "-", "--log-level", "WARNING"]
    if parameters:
        cmd += ["-y", json.dumps(parameters)]
    if timeout:
        cmd += ["--execution-timeout", str(int(timeout))]
    if STOPPING.is_set():
        raise NotebookFailed(f"{src} was not started: the run is stopping")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace", start_new_session=True, env=env or kernel_env())
    CHILDREN.add(proc)
    err_tail = collections.deque(maxlen=60)
    reader = threading.Thread(target=lambda: err_tail.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        for line in proc.stdout:  # tqdm's carriage returns split lines too
            on_line(line.rstrip("\n"))
        code = proc.wait()
        reader.join(timeout=5)
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
        CHILDREN.discard(proc)
    if code != 0:
        raise NotebookFailed(failure_report(src, dst, "".join(err_tail)))
    return time.perf_counter() - start


def failure_report(src, dst, stderr):
    """'<notebook> failed in cell N (Error: message)' and the tail of the traceback: the cell's
    own error from the partial output notebook, or papermill's when the kernel died, a cell
    timed out or the kernel never started."""
    name = Path(src).name
    lines = [l for l in ANSI.sub("", stderr).splitlines() if l.strip() and "without encryption" not in l]
    kernel = next((l.strip() for l in lines if re.search(r"CellTimeoutError|DeadKernelError|Kernel died", l)), None)
    cell = cell_error(dst)
    if cell and not kernel:
        count, ename, evalue, tail = cell
        return f"{name} failed in cell {count} ({ename}: {evalue})\n{tail}"
    reason = kernel or next((l.strip() for l in reversed(lines) if re.match(r"^[\w.]+(Error|Exception)\b", l)),
                            "papermill stopped before the end")
    where = f" in cell {cell[0]}" if cell else ""
    return f"{name} failed{where} ({reason})\n" + "\n".join(lines[-12:])


def cell_error(nb_path):
    """(execution count, error name, message, traceback tail) of the first failed cell, or None."""
    try:
        nb = json.loads(Path(nb_path).read_text())
    except (OSError, ValueError):
        return None
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                tail = "\n".join(ANSI.sub("", "\n".join(out.get("traceback", []))).splitlines()[-12:])
                return cell.get("execution_count"), out.get("ename"), out.get("evalue"), tail
    return None


def kernel_env(threads=None):
    """The kernels' environment: MNIST_DATA_DIR made absolute (they run in a staging folder)."""
    env = dict(os.environ)
    data = env.get("MNIST_DATA_DIR") or str(ROOT / "data")
    env["MNIST_DATA_DIR"] = str(Path(data).resolve())
    env["PYTHONWARNINGS"] = "ignore"
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


class signals_held:
    """Hold SIGINT and SIGTERM back (main thread only) while a finished step's files move, so
    that an interrupt never lands between two renames; they are delivered afterwards."""

    def __enter__(self):
        self.held = threading.current_thread() is threading.main_thread()
        if self.held:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

    def __exit__(self, *exc):
        if self.held:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def promote(stage, dest, notebook):
    """Move what a finished step made from stage into dest: the results files first, then the
    notebook, each by one atomic rename."""
    dest, stage_res = Path(dest), Path(stage) / "results"
    (dest / "results").mkdir(parents=True, exist_ok=True)
    for f in sorted(stage_res.iterdir()) if stage_res.is_dir() else []:
        os.replace(f, dest / "results" / f.name)
    os.replace(Path(stage) / notebook, dest / notebook)


def run_step(step, dest, parameters=None, label=None, echo=echo_line, timeout=None, env=None):
    """Run one step in a staging folder inside dest; on success write its Result block, add to its
    record the fingerprint of the notebook's training code, and move its notebook and results
    into dest.  Returns (record, seconds)."""
    label = label or f"step {step}"
    stage = Path(dest) / f".staging-{label.replace(' ', '')}-{os.getpid()}"
    clear_stale_stages(dest)
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    RUNNING.add(label)
    try:
        def on_line(line):
            if EPOCH_LINE.match(line):
                echo(f"  {label} | {line}")
        seconds = execute(NOTEBOOKS[step], stage, parameters, on_line, timeout, env)
        path = stage / "results" / f"step{step}.json"
        if not path.is_file():
            raise NotebookFailed(f"{NOTEBOOKS[step]} ran to the end but wrote no results/step{step}.json")
        record = records.load_record(path)
        record["training_code"] = records.notebook_training_code(stage / NOTEBOOKS[step])
        records.write_json(record, path)
        sync_docs.sync_result_block(stage / NOTEBOOKS[step], record)
        with signals_held():
            promote(stage, dest, NOTEBOOKS[step])
        RUNNING.discard(label)  # a step that did not finish stays named for the interrupt message
        return record, seconds
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def step_line(step, record, seconds):
    """The one line the console shows when a step has finished."""
    h = record["history"]["test_acc"]
    return (f"step {step} {NOTEBOOKS[step]:<32} {record['model']} {record['params']:>6,} params | "
            f"best test {max(h):.2f}% | last {h[-1]:.2f}% | min last {WINDOW} "
            f"{min(h[-WINDOW:]):.2f}% | {seconds:.0f} s")


# ----------------------------------------------------------------------------- series and seeds

def run_steps(steps, dest, parameters, echo=echo_line, timeout=None, env=None):
    """Run each step in turn; returns {step: seconds}."""
    times = {}
    for step in steps:
        echo(f"== step {step}: {NOTEBOOKS[step]}")
        record, seconds = run_step(step, dest, parameters, echo=echo, timeout=timeout, env=env)
        times[step] = seconds
        echo(step_line(step, record, seconds))
    return times


def injected_parameters(nb_path):
    """The parameters papermill injected into an executed notebook ({} when none)."""
    values = {}
    for cell in json.loads(Path(nb_path).read_text())["cells"]:
        if "injected-parameters" in cell["metadata"].get("tags", []):
            exec("".join(cell["source"]), {}, values)
    return values


def finished_seed(folder, parameters):
    """The record of a Step 3 run already in folder if what decides its numbers is as it is now:
    the same parameters, the notebook's training code (cells after training may differ), the
    recipe of series.py, and the library's computation (the record's probe holds); else None."""
    path, nb_path = Path(folder) / "results" / "step3.json", Path(folder) / NOTEBOOKS[3]
    if not (path.is_file() and nb_path.is_file()):
        return None
    record = records.load_record(path)
    recipe = utils.check_recipe(series.recipe(3, epochs=parameters.get("epochs", series.STEP3["epochs"])))
    same = (injected_parameters(nb_path) == parameters
            and record.get("training_code") == records.notebook_training_code(ROOT / NOTEBOOKS[3])
            and {k: v for k, v in record["settings"].items() if k not in records.NOT_RECIPE} == recipe
            and "probe" in record and not records.probe_differs(record["probe"]))
    return record if same else None


def run_seeds(seeds, dest, parameters, jobs=1, echo=echo_line, timeout=None, env=None, resume=False):
    """Run Step 3 once per seed into dest/seed_K; returns the seeds record.  With resume, a seed
    whose finished run is in dest/seed_K with the same code and parameters is not run again."""
    def run_one_seed(seed):
        params = dict(parameters, seed=seed, progress=False)
        if resume and (record := finished_seed(Path(dest) / f"seed_{seed}", params)):
            echo(f"seed {seed}: finished before, same code and parameters: kept, not run again")
            return record
        record, seconds = run_step(3, Path(dest) / f"seed_{seed}", params, label=f"seed {seed}",
                                   echo=echo, timeout=timeout, env=env)
        echo(f"seed {seed}: " + step_line(3, record, seconds))
        return record
    echo(f"== Step 3 on seeds {' '.join(map(str, seeds))}, {jobs} at a time")
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = [pool.submit(run_one_seed, seed) for seed in seeds]
        runs = [f.result() for f in futures]
    except BaseException:  # a failed seed or an interrupt stops the others too
        stop()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return seeds_record(runs)


def seeds_record(runs):
    """One record for a seeds run: each seed's test curve and its minimum over the last epochs,
    and what every seed shared (model, settings, probe, training code; an error if they did not)."""
    first = runs[0]
    shared = ("model", "params", "epochs", "settings", "probe", "training_code", "device", "torch", "threads")
    for r in runs[1:]:
        for key in shared:
            if r.get(key) != first.get(key):
                raise NotebookFailed(f"seed {r['seed']} ran with another {key} than seed {first['seed']}")
    rows = [dict(seed=r["seed"], test_acc=r["history"]["test_acc"], min_last=min(r["history"]["test_acc"][-WINDOW:]),
                 last=r["history"]["test_acc"][-1], best=max(r["history"]["test_acc"]),
                 wall_seconds=r["wall_seconds"], threads=r.get("threads"), git_commit=r.get("git_commit"))
            for r in runs]
    out = {k: first.get(k) for k in shared if k != "training_code"}
    return dict(out, training_code=[first.get("training_code")],
                git_commits=sorted({r.get("git_commit") for r in runs if r.get("git_commit")}),
                test_images=first.get("settings", {}).get("test_images", 10000), window=WINDOW, target=TARGET,
                seeds=rows)


def save_seeds(record, res):
    """results/seeds.json and seeds.png for a seeds run."""
    records.write_json(record, Path(res) / "seeds.json")
    plots.plot_seeds(record, Path(res) / "seeds.png", target=TARGET, window=WINDOW)
    return Path(res) / "seeds.json"


def vouch_for_seeds(before, after, seeds_path, reference=None):
    """When a Step 3 run of new training code reproduces a Step 3 run of training code that the
    seeds record holds (the same seed, threads, device and settings, every epoch's figures equal),
    the seeds record holds the new code too, with the evidence.  before: the run it reproduces
    (by default the results/step3.json it replaces); reference: what that run was, in words.
    Returns True when it added the new code."""
    if before is None or not Path(seeds_path).is_file():
        return False
    seeds = records.read_json(seeds_path)
    old, new = before.get("training_code"), after.get("training_code")
    keys = ("seed", "threads", "device", "settings", "epochs")
    same_run = all(before.get(k) == after.get(k) for k in keys) and all(
        before["history"][k] == after["history"][k] for k in utils.HISTORY_KEYS if k != "seconds")
    if old not in seeds["training_code"] or new in seeds["training_code"] or not same_run:
        return False
    seeds["training_code"].append(new)
    seeds.setdefault("training_code_reproduced", []).append(dict(
        training_code=new, reproduces=old, git_commit=after.get("git_commit"), device=after.get("device"),
        evidence=f"{reference or 'the results/step3.json it replaced'}, seed {after['seed']}: every epoch's "
                 f"losses and accuracies equal"))
    records.write_json(seeds, seeds_path)
    return True


# ----------------------------------------------------------------------------- Colab

def github_repo(url):
    """'owner/name' from a GitHub remote address (https or ssh), else None."""
    m = re.match(r"^(?:https://github\.com/|git@github\.com:|ssh://git@github\.com/)([\w.-]+/[\w.-]+?)(?:\.git)?/?$",
                 url.strip())
    return m.group(1) if m else None


def origin_repo(root=ROOT):
    try:
        url = subprocess.run(["git", "remote", "get-url", "origin"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return github_repo(url) if url else None


def set_repo(repo, root=ROOT):
    """Point every notebook's Colab badge and `repo` parameter at the GitHub repository repo
    (owner/name); returns the notebooks changed."""
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo or ""):
        raise ValueError(f"--repo takes a GitHub owner/name such as octo/s7, got {repo!r}")
    changed = []
    for name in NOTEBOOKS.values():
        path = Path(root) / name
        nb = nbformat.read(str(path), as_version=4)
        before = [c.source for c in nb.cells]
        nb.cells[0].source = re.sub(r"colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/",
                                    f"colab.research.google.com/github/{repo}/blob/", nb.cells[0].source)
        for cell in nb.cells:
            if "parameters" in cell.metadata.get("tags", []):
                cell.source = re.sub(r'^repo = "[^"]*"', f'repo = "{repo}"', cell.source, flags=re.M)
        if [c.source for c in nb.cells] != before:
            nbformat.write(nb, str(path))
            changed.append(name)
    return changed


# ----------------------------------------------------------------------------- command line

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3])
    p.add_argument("--epochs", type=int, help="override the notebooks' epochs (<= 15)")
    p.add_argument("--seed", type=int, help="override the notebooks' seed")
    p.add_argument("--seeds", type=int, nargs="+", help="run Step 3 once per seed -> results/seeds.json")
    p.add_argument("--jobs", type=int, default=1, help="seeds run at once")
    p.add_argument("--resume", action="store_true", help="with --seeds: keep the seeds whose finished run "
                   "(same code and parameters) is already in the output folder; run only the others")
    p.add_argument("--threads", type=int, help="CPU threads per notebook (default: all; with --jobs, shared)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--data-dir", help="folder holding MNIST/raw (default: $MNIST_DATA_DIR, else ./data)")
    p.add_argument("--train-subset", type=int, help="train on the first N images only (smoke runs)")
    p.add_argument("--holdout", type=int, help="Step 3: evaluate on the last N training images instead "
                   "of the test set (with --steps 3 --out DIR: kept apart from the record)")
    p.add_argument("--quick", action="store_true", help="1 epoch on 2,000 images (smoke run)")
    p.add_argument("--out", help="write notebooks and results here instead of in place")
    p.add_argument("--timeout", type=int, help="seconds a cell may run before the run fails")
    p.add_argument("--readme", action="store_true", help="only rewrite the README's generated sections")
    p.add_argument("--check", action="store_true", help="check the committed results and claims; trains nothing")
    p.add_argument("--repo", help="point the Colab badges and `repo` parameters at GitHub owner/name; runs nothing")
    args = p.parse_args(argv)
    if args.epochs is not None and not 1 <= args.epochs <= 15:
        p.error(f"--epochs must be between 1 and 15, got {args.epochs}")
    if args.seeds and args.steps != [3] and args.steps != [1, 2, 3]:
        p.error("--seeds runs Step 3 only; drop --steps or use --steps 3")
    for name in ("jobs", "threads", "train_subset", "timeout", "holdout"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.repo is not None and not re.fullmatch(r"[\w.-]+/[\w.-]+", args.repo):
        p.error(f"--repo takes a GitHub owner/name such as octo/s7, got {args.repo!r}")
    if args.holdout is not None and (args.seeds or args.steps != [3] or not args.out):
        p.error("--holdout is for Step 3 runs kept apart from the record: use it with --steps 3 --out DIR "
                "(held-out comparisons of recipes: benchmarks/ladder.py)")
    if args.resume and not args.seeds:
        p.error("--resume goes with --seeds: it keeps the seeds already run in the output folder")
    if args.quick and not args.out:
        args.out = "runs/quick"
    return args


def notebook_parameters(args):
    """The papermill parameters for the options given (none for a plain full run, so that the
    committed notebooks carry no injected cell)."""
    params = {}
    if args.epochs:
        params["epochs"] = args.epochs
    if args.seed is not None:
        params["seed"] = args.seed
    if args.device:
        params["device"] = args.device
    if args.train_subset:
        params["train_subset"] = args.train_subset
    if args.holdout:
        params["holdout"] = args.holdout
    if args.quick:
        params.update(epochs=1, train_subset=2000, progress=False)
    return params


def run(args, echo=echo_line):
    """The notebook runs the arguments ask for; the README is rewritten for in-place runs."""
    params = notebook_parameters(args)
    dest = Path(args.out) if args.out else ROOT
    if args.data_dir:
        os.environ["MNIST_DATA_DIR"] = str(Path(args.data_dir).resolve())
    threads = args.threads or (max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None)
    env = kernel_env(threads)
    start = time.perf_counter()
    if args.seeds:
        record = run_seeds(args.seeds, Path(args.out or "runs/seeds"), params, args.jobs, echo,
                           args.timeout, env, resume=args.resume)
        echo(f"wrote {save_seeds(record, dest / 'results')}")
        return
    before = records.read_json(dest / "results" / "step3.json") if (dest / "results" / "step3.json").is_file() else None
    times = run_steps(args.steps, dest, params, echo, args.timeout, env)
    total = time.perf_counter() - start
    echo(f"series: {len(times)} notebooks in {total:.0f} s")
    if not args.out and 3 in times and not params and vouch_for_seeds(
            before, records.load_record(dest / "results" / "step3.json"), dest / "results" / "seeds.json"):
        echo("results/seeds.json: Step 3's new training code reproduced its record bit for bit, so the seeds hold for it")
    if not args.out and args.steps == [1, 2, 3] and not params and not threads:
        records.write_json(dict(records.provenance(utils.get_device("auto")), total_seconds=total,
                                notebooks={str(k): v for k, v in times.items()}),
                           ROOT / "results" / "series.json")


def main(argv=None):
    args = parse_args(argv)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    if args.data_dir:
        os.environ["MNIST_DATA_DIR"] = str(Path(args.data_dir).resolve())
    if args.check:
        return check_claims.main()
    if args.repo:
        changed = set_repo(args.repo)
        print(f"Colab badges and `repo` now point at {args.repo} ({len(changed)} notebooks changed)")
        return 0
    if args.readme:
        print("README updated" if sync_docs.write_readme() else "README already up to date")
        return 0
    if not args.out and (repo := origin_repo()) and repo != PLACEHOLDER_REPO:
        set_repo(repo)
    STOPPING.clear(), RUNNING.clear()
    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    # Ctrl-C stops the run even where SIGINT came in ignored (a background job of a script)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run(args)
        return 0
    except NotebookFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Interrupted) as err:
        running = ", ".join(sorted(RUNNING)) or "no step"
        stop()
        name = "SIGINT" if isinstance(err, KeyboardInterrupt) else str(err)
        print(f"interrupted ({name}) during {running}: its notebook and results are unchanged "
              f"(steps that finished before it keep their new files)", file=sys.stderr)
        return 130 if name == "SIGINT" else 143
    finally:
        stop()
        STOPPING.clear()  # main() can be called again (tests)
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        if not args.out:
            update_readme()


def update_readme():
    """Rewrite the README's generated sections from what is in results/ now; a problem is
    reported, not raised, so that it never hides the run's own outcome."""
    try:
        print("README updated" if sync_docs.write_readme() else "README already up to date")
    except (OSError, ValueError, KeyError) as err:
        print(f"README not updated: {type(err).__name__}: {err}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
