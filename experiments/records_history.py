"""History: how the records made before probes existed came to keep a probe and their own history.
It ran once (then `vouch` once, after the series re-run), in a full clone, before any code of the refactor that added probes changed a
computation; kept so that anyone can see how those fields were made.

    python experiments/records_history.py BEFORE   # BEFORE: the last commit whose records named fingerprints
    python experiments/records_history.py vouch REF_DIR BEFORE   # then, after the series re-run
    python experiments/records_history.py earlier  # only docs/records/earlier_runs.json

For each record that names the fingerprints of model.py and utils.py (the scheme before probes),
it checks that they are the fingerprints of those files at BEFORE, then adds the probe of the
record's recipe (records.probe) computed by this checkout's code; the series re-run after the
refactor then checked that this code trains every step bit for bit as BEFORE's did.  It adds to
results/seeds.json the history that the tests used to read from git (the freeze commit, the seeds
recorded before it, the notebook code the seeds ran), and writes docs/records/earlier_runs.json:
the seeds and held-out records of earlier recipes that the texts cite, read from their commits.

`vouch`: the seeds ran the frozen notebook on another CPU than the one the refactor was checked on,
where Step 3 does not repeat their CPU's last digits.  So BEFORE's own runner and notebook ran Step 3
into REF_DIR on this CPU, and the re-run Step 3 (results/step3.json) is held against that run: when
every epoch's figures are equal, the seeds record holds the new notebook's training code too
(run_notebooks.vouch_for_seeds, with this evidence).
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import records  # noqa: E402
import run_notebooks  # noqa: E402
import series  # noqa: E402

# The earlier records the texts cite: (commit, path, what it was)
EARLIER = [("c3cbf16", "results/seeds.json", "first recipe, test seeds"),
           ("8489e00", "results/seeds.json", "momentum fixed, test seeds"),
           ("0d74342", "results/seeds.json", "peak 0.2, test seeds"),
           ("5b9b423", "results/seeds.json", "shift 0.05, test seeds, Xeon"),
           ("5666ce9", "results/seeds.json", "shift 0.05, test seeds, EPYC, before the freeze"),
           ("e421a99", "results/holdout.json", "first recipe, held-out seeds 101-104"),
           ("bd1275e", "results/holdout.json", "peak 0.2, held-out seeds 111-114"),
           ("3deddb1", "results/holdout.json", "shift 0.05, held-out seeds 111-114, Xeon")]
# An earlier README that states how the first recipe was chosen: (commit, the words)
FIRST_RECIPE_SAID = ("8b5ce8b", "whose settings had been chosen, and its seeds 1 to 5 seen, on the test set")


def git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def show(commit, path):
    return git("show", f"{commit}:{path}")


def check_fingerprints(record, before, name):
    named = record.get("code_fingerprint") or {}
    for file in ("model.py", "utils.py"):
        if named.get(file) != records.fingerprint(show(before, file)):
            raise SystemExit(f"{name}: its {file} is not {before}'s; a probe of this code would not describe it")


def freeze_commit():
    """The commit that added the freeze section to docs/search-plan.md (rule 6 of the plan)."""
    return git("log", "--format=%H", "-S", "## Freeze", "--", "docs/search-plan.md").split()[-1]


def seeds_recorded_before(commit):
    """Every seed that a results/seeds.json or results/holdout.json held at or before commit."""
    seen = set()
    for c in git("log", "--format=%H", commit, "--", "results/seeds.json", "results/holdout.json").split():
        for path in ("results/seeds.json", "results/holdout.json"):
            try:
                seen |= {r["seed"] for r in json.loads(show(c, path))["seeds"]}
            except subprocess.CalledProcessError:
                pass
    return sorted(seen)


def settings_summary(settings):
    """The settings the texts compare across records, from each record's own layout."""
    sched = settings.get("scheduler")
    return dict(max_lr=settings.get("max_lr") or (sched.get("max_lr") if isinstance(sched, dict) else None),
                translate=settings.get("translate"),
                cycle_momentum=sched.get("cycle_momentum") if isinstance(sched, dict) else None,
                channels_last=bool(settings.get("channels_last")))


def main(before):
    for name in ("results/step1.json", "results/step2.json", "results/step3.json"):
        rec = records.read_json(ROOT / name)
        check_fingerprints(rec, before, name)
        rec["probe"] = records.probe(rec["model"], rec["settings"])
        step = int(rec["model"][-1])
        rec["training_code"] = records.notebook_training_code_of(show(before, series.NOTEBOOKS[step]))
        records.write_json(rec, ROOT / name)
    for name in series.PROBED[4:]:
        rec = records.read_json(ROOT / name)
        check_fingerprints(rec, before, name)
        base = "full" if rec["plan"] == "ablation" else "present"
        rec["probes"] = {base: records.probe("Model_3", rec["recipe_settings"][base]["settings"])}
        records.write_json(rec, ROOT / name)
    seeds = records.read_json(ROOT / "results" / "seeds.json")
    check_fingerprints(seeds, before, "results/seeds.json")
    freeze = freeze_commit()
    seeds["probe"] = records.probe(seeds["model"], seeds["settings"])
    seeds["training_code"] = [records.notebook_training_code_of(show(freeze, series.NOTEBOOKS[3]))]
    seeds["freeze"] = dict(commit=freeze, seeds_recorded_before=seeds_recorded_before(freeze),
                           ran_after_freeze=subprocess.run(["git", "merge-base", "--is-ancestor", freeze,
                                                            seeds["git_commit"]], cwd=ROOT).returncode == 0)
    seeds["git_commits"] = [seeds["git_commit"]]
    records.write_json(seeds, ROOT / "results" / "seeds.json")
    write_earlier()


def write_earlier():
    """docs/records/earlier_runs.json from the commits that made those records."""
    earlier = []
    for commit, path, role in EARLIER:
        old = json.loads(show(commit, path))
        earlier.append(dict(role=role, commit=git("rev-parse", commit).strip(), path=path, device=old["device"],
                            seeds=[r["seed"] for r in old["seeds"]], min_last=[r["min_last"] for r in old["seeds"]],
                            summary=settings_summary(old["settings"]), settings=old["settings"]))
    said = " ".join(show(FIRST_RECIPE_SAID[0], "README.md").split())
    return records.write_json(dict(
        what="Seeds and held-out records of earlier Step 3 recipes, read from the commits that made them "
             "(experiments/records_history.py)", records=earlier,
        first_recipe_said=dict(commit=git("rev-parse", FIRST_RECIPE_SAID[0]).strip(), path="README.md",
                               words=FIRST_RECIPE_SAID[1], found=FIRST_RECIPE_SAID[1] in said)),
        ROOT / "docs" / "records" / "earlier_runs.json")


def vouch(ref_dir, before):
    ref = records.read_json(Path(ref_dir) / "results" / "step3.json")
    ref["training_code"] = records.notebook_training_code(Path(ref_dir) / series.NOTEBOOKS[3])
    now = records.load_record(ROOT / "results" / "step3.json")
    done = run_notebooks.vouch_for_seeds(ref, now, ROOT / "results" / "seeds.json",
                                         reference=f"Step 3 run by the runner and notebook of commit {before} "
                                                   f"on the same CPU")
    print("the seeds record holds the new training code" if done else "not reproduced: nothing added")
    return 0 if done else 1


if __name__ == "__main__":
    if sys.argv[1] == "vouch":
        sys.exit(vouch(sys.argv[2], sys.argv[3]))
    if sys.argv[1] == "earlier":
        sys.exit(write_earlier() and 0)
    main(sys.argv[1])
