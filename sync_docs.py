"""Keep the narrative in step with the runs: each notebook's Result block and the README's
generated sections are written from results/*.json, never by hand.

    python sync_docs.py        # rewrite the README's generated sections (same as run_notebooks.py --readme)
"""
import json
import re
import sys
from pathlib import Path

import nbformat

import plots
import records
import report
from series import MAX_EPOCHS, MAX_PARAMS, NOTEBOOKS, TARGET, WINDOW

ROOT = Path(__file__).resolve().parent
RESULT_BLOCK = re.compile(r"(<!-- result:begin -->\n)(.*?)(\n<!-- result:end -->)", re.S)
DOCS = ("README.md", "docs/recipe-history.md")  # the documents with generated sections
GENERATED = re.compile(r"(<!-- generated:(\w+):begin -->\n)(.*?)(<!-- generated:\2:end -->)", re.S)


class DocsError(ValueError):
    """A notebook or the README lacks the markers the generated text goes between."""


# ----------------------------------------------------------------------------- notebooks

def first_cell(nb_path):
    nb = json.loads(Path(nb_path).read_text())
    return "".join(nb["cells"][0]["source"])


def sync_result_block(nb_path, record):
    """Rewrite the Result block in the notebook's first cell from its results record."""
    nb = nbformat.read(str(nb_path), as_version=4)
    cell = nb.cells[0]
    if not RESULT_BLOCK.search(cell.source):
        raise DocsError(f"{Path(nb_path).name}: the first cell has no <!-- result:begin/end --> markers")
    cell.source = RESULT_BLOCK.sub(lambda m: m.group(1) + report.result_markdown(record) + m.group(3),
                                   cell.source)
    strip_machine_paths(nb, Path(nb_path).name)
    nbformat.write(nb, str(nb_path))


def strip_machine_paths(nb, name):
    """papermill records where it read and wrote the notebook as absolute paths of the machine
    (and of the staging folder); keep only the file name, which is where the notebook lives."""
    meta = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if key in meta:
            meta[key] = name


def sections(nb_path):
    """{'target': ..., 'result': ..., 'analysis': ...} from a notebook's first cell."""
    text = first_cell(nb_path)
    parts = re.split(r"^## (Target|Result|Analysis)\s*$", text, flags=re.M)
    found = {parts[i].lower(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    return {k: RESULT_BLOCK.sub(lambda m: m.group(2), v) for k, v in found.items()}


# ----------------------------------------------------------------------------- README

def load_records(res):
    """{step: record} for the steps that have a results file in res."""
    return {s: records.load_record(Path(res) / f"step{s}.json")
            for s in NOTEBOOKS if (Path(res) / f"step{s}.json").is_file()}


SEARCH = "experiments/search"  # the finished search, confirmation and ablation, with their records
# Step 3 on held-out seeds 111-114 with the recipe as it was before the freeze (weights in the
# default layout): the last results/holdout.json of that recipe, kept as history
HOLDOUT_HISTORY = Path("docs/records/holdout_97f008a.json")


def readme_sections(root=ROOT, up=""):
    """The text of every generated section, from the notebooks and results/; links start with
    `up` (the way from the document's folder to the repository's root)."""
    res = Path(root) / "results"
    records = load_records(res)
    seeds = json.loads((res / "seeds.json").read_text()) if (res / "seeds.json").is_file() else None
    out = {"steps": steps_table(records, up) + "\n" + series_line(root), "checklist": checklist(records, seeds),
           "steps_chart": steps_chart(root, up)}
    out["seeds"] = (seeds_table(seeds, "seeds", up) if seeds else
                    "_Not run yet: `python run_notebooks.py --steps 3 --seeds 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 --jobs 2`._\n")
    held = Path(root) / HOLDOUT_HISTORY  # a historical record: the recipe before the freeze
    out["holdout"] = (seeds_table(json.loads(held.read_text()), "holdout", up, plot=HOLDOUT_HISTORY.with_suffix(".png"))
                      if held.is_file() else "_Not in this copy._\n")
    sweep = Path(root) / "experiments" / "recipe_sweep" / "recipe_sweep_b7d79cc.json"  # a historical record
    out["sweep"] = sweep_table(json.loads(sweep.read_text())) if sweep.is_file() else "_Not in this copy._\n"
    out["performance"] = performance(root) or "_Not measured yet: `python run_notebooks.py`._\n"
    out["speed"] = speed_table(res / "speed.json")
    out["speed_search"] = speed_table(Path(root) / SEARCH / "speed.json", search=True)
    ladder = Path(root) / "benchmarks" / "ladder.json"
    out["ladder"] = ladder_table(json.loads(ladder.read_text()), up, root) if ladder.is_file() else \
        "_Not run yet: `python benchmarks/ladder.py`._\n"
    for plan in ("search", "confirm", "ablation"):
        path = Path(root) / SEARCH / f"{plan}.json"
        out[plan] = (plan_table(json.loads(path.read_text()), up) if path.is_file() else
                     f"_Not run yet: `python {SEARCH}/search.py {plan}`._\n")
    return out



fixed = report.fixed  # the plans' figures, rounded as by hand (report.py)


def plan_table(rec, up=""):
    """A plan's record of experiments/search/search.py as a table: mean of the per-seed minimums, the
    paired difference from the baseline with its standard error, seeds at the bar, worst seed."""
    base = "full" if rec["plan"] == "ablation" else "present"
    seeds = rec["seeds"]
    lines = [f"{len(seeds)} seeds ({seeds[0]}-{seeds[-1]}) per recipe, each trained on "
             f"{rec['recipe_settings'][base]['settings']['train_images']:,} training images and scored on the "
             f"{rec['held_out_images']:,} held out after every epoch; each seed judged by its minimum over the last "
             f"{rec['window']} epochs. {rec['device']}, {threads(rec)} per run.", "",
             f"| Recipe | Params | Mean of the minimums | Paired difference from {'the whole recipe' if base == 'full' else 'the present recipe'} "
             f"| Seeds >= {rec['target']}% | Worst seed |", "|---|---:|---:|---:|---:|---:|"]
    for name in rec["recipes"]:
        label = report.plan_label(rec, name)
        gone = rec.get("diverged", {}).get(name, [])
        gone = f"diverged on seed{'s' if len(gone) > 1 else ''} {', '.join(map(str, gone))}" if gone else ""
        if name not in rec["summary"]:  # every seed diverged
            lines.append(f"| {label} | {rec['params'][name]:,} | {gone} | | | |")
            continue
        r = rec["summary"][name]
        diff = (f"{fixed(r['paired_diff'], sign=True)} +- {fixed(r['paired_se'])} pt" if "paired_diff" in r else "")
        if diff and r["paired_seeds"] < len(seeds):  # paired on the seeds both finished
            diff += f" (on those {r['paired_seeds']})"
        mean = f"{gone}; the other {len(r['seeds'])}: {fixed(r['mean_min'])}%" if gone else f"{fixed(r['mean_min'])}%"
        lines.append(f"| {label} | {rec['params'][name]:,} | {mean} | {diff} | "
                     f"{r['at_bar']} / {len(seeds)} | {r['worst']:.2f}% |")
    if rec["plan"] == "confirm":
        both = rec["sixteen_seeds"]
        lines += ["", f"Over the 16 seeds of the search and the confirmation: {rec['pick']} "
                      f"{fixed(both[rec['pick']]['mean_min'])}% ({both[rec['pick']]['at_bar']} of 16 at the bar), "
                      f"the present recipe {fixed(both['present']['mean_min'])}% ({both['present']['at_bar']} of 16). "
                      f"Adopted: **{rec['adopted']}**."]
    lines += ["", f"![{rec['plan']}: each seed's minimum]({up}{SEARCH}/{rec['plan']}.png)"]
    return "\n".join(lines) + "\n"


def ladder_table(rec, up="", root="."):
    """The ladder's record as a table: each rung's mean of the per-seed minimums, seeds at the bar,
    worst seed, the paired difference from the rung before, and its fit at the end of training.
    The whole recipe's rung reuses another record's runs; the caption names where they ran."""
    n = len(rec["seeds"])
    source = Path(root) / rec["whole_from"].split(":")[0]
    elsewhere = json.loads(source.read_text())["device"] if source.is_file() else "a CPU this copy has no record of"
    lines = [f"{n} seeds ({rec['seeds'][0]}-{rec['seeds'][-1]}) per rung, each trained on "
             f"{rec['recipe_settings']['step1']['settings']['train_images']:,} training images and scored on the "
             f"{rec['held_out_images']:,} held out after every epoch; each seed judged by its minimum over the last "
             f"{rec['window']} epochs. {rec['device']}, {threads(rec)} per run, except the whole recipe's runs, which "
             f"are the search's ({rec['whole_from'].split(':')[0]}) on {elsewhere}. Fit: the end-of-training accuracy in "
             f"eval mode on the training digits and on the held-out ones, mean over the seeds.", "",
             f"| Rung | Net | Params | Mean of the minimums | Seeds >= {rec['target']}% | Worst seed | "
             f"Paired difference from the rung before | Fit: train / held-out |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name in rec["recipes"]:
        r, runs = rec["summary"].get(name), rec["runs"].get(name, {})
        gone = rec.get("diverged", {}).get(name, [])
        model = rec["recipe_settings"][name]["model"] + (" (dropout 0)" if name == "step2_bn" else "")
        if r is None:
            lines.append(f"| {name} | {model} | {rec['params'][name]:,} | diverged on every seed | | | | |")
            continue
        diff = (f"{fixed(r['paired_diff'], sign=True)} +- {fixed(r['paired_se'])} pt (from {r['step_from']})"
                if "paired_diff" in r else "")
        ends = [x["end"] for x in runs.values() if x.get("end")]
        fit = (f"{sum(e['train_acc'] for e in ends) / len(ends):.2f}% / {sum(e['test_acc'] for e in ends) / len(ends):.2f}%"
               if ends else "not recorded")
        mean = f"{fixed(r['mean_min'])}%" + (f" ({len(gone)} diverged)" if gone else "")
        lines.append(f"| {name} | {model} | {rec['params'][name]:,} | {mean} | {r['at_bar']} / {n} | {r['worst']:.2f}% | "
                     f"{diff} | {fit} |")
    lines += ["", f"![the ladder: each seed's minimum, and the fit]({up}benchmarks/ladder.png)"]
    return "\n".join(lines) + "\n"


def speed_table(path, search=False):
    """A record of benchmarks/speed.py: training images per second of each model, side by side (the
    search's candidates in the historical one that the recipe history shows)."""
    if not Path(path).is_file():
        return "_Not measured yet: `python benchmarks/speed.py`._\n"
    s = json.loads(Path(path).read_text())
    lines = [f"Training steps only, {s['steps']} steps a turn, {s['repeats']} turns each, in turns in one "
             f"process, on {s['device']}, {threads(s)} (median of the turns):", "",
             "| Model (recipe) | Params | Batch | Channels-last | Images / s | vs Model_3 (Step 3) |",
             "|---|---:|---:|---|---:|---:|"]
    ref = next(m["images_per_s"] for m in s["models"] if m["name"] == "Model_3 (Step 3)")
    shown = [m for m in s["models"] if search or not m["name"].startswith("search: ")]
    for m in shown:
        lines.append(f"| {m['name']} | {m['params']:,} | {m['batch_size']} | {'yes' if m['channels_last'] else 'no'} | "
                     f"{m['images_per_s']:,.0f} | {m['images_per_s'] / ref:.2f}x |")
    if search:
        lines += ["", "The rows `search: NAME` are the recipes of the held-out search (docs/search-plan.md) as "
                      "experiments/search/search.py trains them; `Model_3 (before the freeze)` is Step 3's model and "
                      "recipe with its weights in the default layout."]
    return "\n".join(lines) + "\n"


STEP_CHANGES = {  # what each step changed, for the steps table
    1: "the skeleton: wide, plain SGD, nothing to help it",
    2: "the same layers at about half the widths, under the budget",
    3: "batch norm, dropout, rotations and shifts, one-cycle schedule, weight average",
}


def steps_table(records_, up=""):
    """One row per step: what it changed, its parameters, its result, its notebook."""
    lines = [f"| Step | What it changed | Params | Min test acc, last {WINDOW} epochs | Best (epoch) | Notebook |",
             "|---|---|---:|---:|---:|---|"]
    for step, r in records_.items():
        s = report.score_history(r["history"], WINDOW, TARGET)
        mark = " (bar met)" if s["consistent"] else ""
        lines.append(f"| {step} | {STEP_CHANGES[step]} | {r['params']:,} | {s['min_last']:.2f}%{mark} | "
                     f"{s['best_test']:.2f}% ({s['best_test_epoch']}) | [{NOTEBOOKS[step]}]({up}{NOTEBOOKS[step]}) |")
    return "\n".join(lines) + "\n"


def steps_chart(root, up=""):
    """The three steps' test accuracy per epoch on one chart (results/steps.png), from their records."""
    records_ = load_records(Path(root) / "results")
    if not records_:
        return "_Not run yet: `python run_notebooks.py`._\n"
    return f"![test accuracy per epoch of the three steps]({up}results/steps.png)\n"


def series_line(root):
    """Where the steps ran and how long their epochs took, from the records."""
    records_ = load_records(Path(root) / "results")
    if not records_:
        return ""
    first = next(iter(records_.values()))
    times = ", ".join(f"Step {k} {sum(r['history']['seconds']):.0f} s" for k, r in records_.items())
    return (f"Seed 1, {first['epochs']} epochs each, on {first['device']}, {threads(first)}; time in the epochs "
            f"(training and scoring): {times}.\n")


def threads(record):
    n = record.get("threads")
    return "threads not recorded" if n is None else f"{n} CPU thread{'s' if n != 1 else ''}"


def correct_digits(accuracy, images):
    """Test accuracy in % back to the count of correct digits it was computed from."""
    return round(accuracy * images / 100)


def constraints(records):
    """[(constraint, met, evidence)] for the assignment's rules, from the results records."""
    r = records.get(3)
    if r is None:
        return []
    acc = r["history"]["test_acc"]
    rows = [
        ("Test accuracy >= 99.4% in each of the last 5 epochs", min(acc[-WINDOW:]) >= TARGET,
         "last 5 epochs: " + ", ".join(f"{a:.2f}" for a in acc[-WINDOW:]) + "% (results/step3.json)"),
        ("Fewer than 8,000 parameters", r["params"] < MAX_PARAMS, f"{r['params']:,} trainable"),
        ("At most 15 epochs", r["epochs"] <= MAX_EPOCHS, f"{r['epochs']} epochs"),
        ("Exactly three steps, each a notebook with Target / Result / Analysis",
         len(records) == len(NOTEBOOKS), ", ".join(NOTEBOOKS.values())),
        ("Receptive field covers the 28x28 digit", r["receptive_field"] >= 28,
         f"RF {r['receptive_field']} at the output"),
    ]
    return rows


def seeds_row(seeds):
    """(name, met, evidence) for the seeds run: this project's stricter reading of
    "consistently", beside the assignment's rules; None when there is no seeds run."""
    if not seeds:
        return None
    mins = [row["min_last"] for row in seeds["seeds"]]
    worst, n = min(mins), seeds.get("test_images", 10000)
    held = sum(m >= TARGET for m in mins)
    return (f"Holds on every one of {len(mins)} seed runs (stricter than the assignment)", held == len(mins),
            f"{held} of {len(mins)} seeds >= {TARGET}% in each of their last {WINDOW} epochs; worst seed's "
            f"minimum {worst:.2f}% ({correct_digits(worst, n):,} / {n:,} digits) (results/seeds.json)")


def checklist(records, seeds):
    rows = constraints(records) + [r for r in [seeds_row(seeds)] if r and 3 in records]
    if not rows:
        return "Step 3 has not been run yet.\n"
    lines = ["| Constraint | Met | Evidence |", "|---|---|---|"]
    lines += [f"| {name} | {'yes' if met else '**no**'} | {evidence} |" for name, met, evidence in rows]
    return "\n".join(lines) + "\n"


def seeds_table(s, name="seeds", up="", plot=None):
    n = s.get("test_images", 10000)
    where = s.get("settings", {}).get("evaluated_on", "test set")
    acc = "test acc" if where == "test set" else "held-out acc"
    lines = [f"{s['model']} ({s['params']:,} parameters), {s['epochs']} epochs, trained on "
             f"{s.get('settings', {}).get('train_images', 60000):,} images and evaluated on the {where}, "
             f"on {s['device']}, {threads(s)} per run.", "",
             f"| Seed | Min {acc}, last {s['window']} | Correct of {n:,} there | Last | "
             f">= {s['target']}% throughout |", "|---:|---:|---:|---:|---|"]
    for row in s["seeds"]:
        flag = "yes" if row["min_last"] >= s["target"] else "**no**"
        lines.append(f"| {row['seed']} | {row['min_last']:.2f}% | {correct_digits(row['min_last'], n):,} | "
                     f"{row['last']:.2f}% | {flag} |")
    mins = [row["min_last"] for row in s["seeds"]]
    worst = min(mins)
    margin = correct_digits(worst, n) - correct_digits(s["target"], n)
    lines += ["", f"Worst seed: {worst:.2f}% ({correct_digits(worst, n):,} of {n:,} digits, "
              f"{abs(margin)} {'above' if margin >= 0 else 'below'} the {correct_digits(s['target'], n):,} "
              f"the bar asks for); mean of the per-seed minimums: {sum(mins) / len(mins):.2f}%.", "",
              f"![accuracy per seed]({up}{plot or f'results/{name}.png'})", ""]
    return "\n".join(lines)


def sweep_table(s):
    """The historical recipe sweep (docs/records/), best mean of the per-seed minimums first."""
    runs = sorted(s["runs"], key=lambda r: -r["mean_min5"])
    n, w, t = s["seeds_per_recipe"], s["window"], s["target"]
    lines = [f"{n} seeds per recipe, {s['epochs']} epochs, on {s['device']}, by {s['code']} at commit "
             f"{s['code_commit'][:7]}; each seed judged by its minimum held-out accuracy over the last {w} "
             f"epochs. The record was assembled from the script's output lines, not written whole by it.", "",
             f"| Recipe (what differs from the baseline) | Params | Mean of the minimums | Seeds >= {t}% | Worst seed |",
             "|---|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['label']} | {r['params']:,} | {r['mean_min5']:.3f}% | "
                     f"{round(r['frac_9940'] * n)} / {n} | {r['worst']:.2f}% |")
    return "\n".join(lines) + "\n"


def performance(root):
    """The whole series' time, from its record."""
    series_ = Path(root) / "results" / "series.json"
    if not series_.is_file():
        return ""
    s = json.loads(series_.read_text())
    per = ", ".join(f"step {k} {v:.0f} s" for k, v in s["notebooks"].items())
    # a step re-run after the series keeps its own record: say which, so that times are not mixed up
    later = {}
    for k in s["notebooks"]:
        step = Path(root) / "results" / f"step{k}.json"
        commit = json.loads(step.read_text()).get("git_commit", "") if step.is_file() else ""
        if commit and commit != s["git_commit"]:
            later.setdefault(commit[:7], []).append(k)
    rerun = "".join(f"; step{'s' if len(ks) > 1 else ''} {' and '.join(ks)} re-ran later (commit {c}), "
                    f"{'their' if len(ks) > 1 else 'its'} times above" for c, ks in later.items())
    return (f"The whole series, `python run_notebooks.py` at commit {s['git_commit'][:7]}, on {s['device']}, "
            f"{threads(s)}: **{s['total_seconds']:.0f} s** ({s['total_seconds'] / 60:.1f} minutes: {per}), each "
            f"notebook's whole papermill run (kernel start, data, plots, the record's probe){rerun}.\n")


def render_readme(text, root=ROOT, up=""):
    """A document's text with every generated section rewritten; unknown sections are an error."""
    new = readme_sections(root, up)

    def fill(m):
        name = m.group(2)
        if name not in new:
            raise DocsError(f"README marker {name!r} names no known section ({', '.join(sorted(new))})")
        return m.group(1) + new[name] + m.group(4)
    return GENERATED.sub(fill, text)


def up_from(doc):
    """The way from a document's folder back to the repository's root, for its links."""
    return "../" * (len(Path(doc).parts) - 1)


def render_doc(doc, root=ROOT):
    """(text now, text with its generated sections rewritten) of one of DOCS."""
    text = (Path(root) / doc).read_text()
    return text, render_readme(text, root, up_from(doc))


def draw_record_pictures(root=ROOT):
    """Draw the pictures the documents show of the records: the three steps on one chart, the
    seeds, and the finished plans (each from its record alone)."""
    steps = load_records(Path(root) / "results")
    if steps:
        plots.steps_curves(steps, Path(root) / "results" / "steps.png")
    if (Path(root) / "results" / "seeds.json").is_file():
        plots.plot_seeds(records.read_json(Path(root) / "results" / "seeds.json"), Path(root) / "results" / "seeds.png")
    for plan in ("search", "confirm", "ablation"):
        path = Path(root) / SEARCH / f"{plan}.json"
        if path.is_file():
            plots.plot_plan(records.read_json(path), path.with_suffix(".png"))


def write_readme(root=ROOT):
    """Rewrite each notebook's Result block, the steps' chart and the generated sections of the
    README and the other DOCS from the records; True when anything changed."""
    changed = False
    draw_record_pictures(root)
    for step, record in load_records(Path(root) / "results").items():
        nb = Path(root) / NOTEBOOKS[step]
        if sections(nb).get("result") != report.result_markdown(record):
            sync_result_block(nb, record)
            changed = True
    for doc in DOCS:
        if not (Path(root) / doc).is_file():
            continue
        text, new = render_doc(doc, root)
        if new != text:
            records.atomic_write(Path(root) / doc, lambda tmp: Path(tmp).write_text(new))
            changed = True
    return changed


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print("README updated" if write_readme() else "README already up to date")
