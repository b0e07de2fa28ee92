"""`make profile` (and part of `make bench`): where a run's wall time goes. Runs `mlops run` as a
user does (its own process, fresh home) for the default job cold, the same job cached, and a
penguin-like job (scikit-learn's iris: 150 rows, 4 numbers, 3 classes; penguins' CSV does not ship
with any installed package) with `--tune random --max-trials 6`, then splits each process's wall
time into: start-up before the command (the CLI's imports), configuring (the preflight), each
component, the steps after the pipeline (baseline, MLflow, model card), and the rest (the pipeline's
own imports of TFX/TF/Beam, ML Metadata, reading results). The Trainer is split further into its
first epoch (tracing, the input's start), the other epochs, and what is not an epoch (reading the
Transform output, building, saving the SavedModel with its signatures).
A wide table of the public housing CSV's shape (2,930 rows: 33 numeric columns, 40 text columns of 2
to 25 values, a price to regress; generated) runs cold with the default slices, then in the same
home sliced on every category of at most 20 values (only the Evaluator and what follows it rerun),
so the two Evaluator figures are side by side.
After the default cold run, the Trainer is set against a bare `model.fit` of the same model on the
same rows (bench/bare_fit.py).
Writes bench/results/profile.json and profile.md; numbers are reported, never asserted."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]


def _run(argv: List[str], home: Path) -> Dict[str, object]:
    started = time.time()
    done = subprocess.run([sys.executable, "-m", "cli.main", "run", *argv, "--home", str(home)], cwd=REPO,
                          capture_output=True, text=True, timeout=3600)
    wall = time.time() - started
    if done.returncode != 0:
        raise RuntimeError(f"mlops run {' '.join(argv)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    log_line = next(line for line in done.stdout.splitlines() if line.startswith("log: "))
    timings = json.loads(Path(log_line.split()[1]).with_suffix(".timings.json").read_text())
    components = {t["name"]: t["seconds"] for t in timings["timings"] if t["kind"] == "component"}
    steps = {t["name"]: t["seconds"] for t in timings["timings"] if t["kind"] == "step"}
    profile = {"wall_s": round(wall, 1), "process_s": timings["process_s"],
               "before_command_s": timings["before_command_s"], "components": components, "steps": steps,
               "components_s": round(sum(components.values()), 1), "steps_s": round(sum(steps.values()), 1),
               "states": sorted({t.get("state") for t in timings["timings"] if t["kind"] == "component"})}
    profile["rest_s"] = round(timings["command_s"] - profile["components_s"] - profile["steps_s"], 1)
    trainer = next(iter(sorted(home.glob("pipelines/*/Trainer/model_run/*/model.json"),
                               key=lambda p: p.stat().st_mtime, reverse=True)), None)
    trainer_state = next((t.get("state") for t in timings["timings"] if t["name"] == "Trainer"), None)
    if trainer is not None and trainer_state == "COMPLETE":
        epochs = json.loads(trainer.read_text()).get("epoch_seconds", [])
        if epochs:
            later = epochs[1:] or epochs
            profile["trainer"] = {"epochs": len(epochs), "first_epoch_s": round(epochs[0], 2),
                                  "median_epoch_s": round(statistics.median(later), 3),
                                  "epochs_s": round(sum(epochs), 1),
                                  "not_epochs_s": round(components["Trainer"] - sum(epochs), 1)}
    return profile


def _trainer_vs_bare_fit(home: Path, trainer_s: float) -> Dict[str, object]:
    """The Trainer component against bench/bare_fit.py in its own process (same home)."""
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bare_fit.py"), str(home)], cwd=REPO,
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"bare_fit failed:\n{done.stderr[-3000:]}")
    bare = json.loads(done.stdout.strip().splitlines()[-1])
    return {**bare, "trainer_s": trainer_s, "ratio": round(trainer_s / bare["bare_fit_s"], 2)}


WIDE_ROWS, WIDE_NUMERIC, WIDE_TEXT = 2930, 33, 40


def write_wide_table(path: Path, seed: int = 0) -> List[str]:
    """The housing CSV's shape; returns the text columns of at most 20 values (the all-slices run)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    cardinalities = [2 + (i * 7) % 24 for i in range(WIDE_TEXT)]  # 2 .. 25 values
    numbers = rng.normal(size=(WIDE_ROWS, WIDE_NUMERIC))
    codes = [rng.integers(0, k, size=WIDE_ROWS) for k in cardinalities]
    price = 180_000 + 30_000 * numbers[:, :5].sum(axis=1) + sum(5_000 * (c % 3) for c in codes[:6]) \
        + rng.normal(scale=10_000, size=WIDE_ROWS)
    header = [f"num_{i:02d}" for i in range(WIDE_NUMERIC)] + [f"text_{i:02d}" for i in range(WIDE_TEXT)] + ["price"]
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for r in range(WIDE_ROWS):
            cells = [("" if (r + i) % 97 == 0 else f"{numbers[r, i]:.4f}") for i in range(WIDE_NUMERIC)]
            cells += [f"v{codes[i][r]}" for i in range(WIDE_TEXT)]
            f.write(",".join(cells + [f"{price[r]:.0f}"]) + "\n")
    return [f"text_{i:02d}" for i, k in enumerate(cardinalities) if k <= 20]


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = Path(tempfile.mkdtemp(prefix="mlops-profile-"))
    from sklearn.datasets import load_iris

    iris = work / "iris.csv"
    load_iris(as_frame=True).frame.to_csv(iris, index=False)
    wide = work / "wide.csv"
    categories = write_wide_table(wide)
    wide_argv = ["--data", str(wide), "--label", "price"]
    runs = {"default job, cold": ([], work / "default"), "default job, cached": ([], work / "default"),
            "penguin-like (iris, --tune random --max-trials 6), cold":
                (["--data", str(iris), "--label", "target", "--tune", "random", "--max-trials", "6"], work / "iris"),
            f"wide table ({WIDE_ROWS} x {WIDE_NUMERIC + WIDE_TEXT + 1}), cold, default slices":
                (wide_argv, work / "wide"),
            f"wide table, sliced on all {len(categories)} categories (Evaluator on)":
                (wide_argv + ["--slice", ",".join(categories)], work / "wide")}
    results = {}
    for name, (argv, home) in runs.items():
        results[name] = _run(argv, home)
        if name == "default job, cold":
            results[name]["trainer_vs_bare_fit"] = _trainer_vs_bare_fit(home, results[name]["components"]["Trainer"])
    report = {"runs": results, "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "trainer_vs_bare_fit": results["default job, cold"]["trainer_vs_bare_fit"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "profile.json").write_text(json.dumps(report, indent=2) + "\n")
    names = list(next(iter(results.values()))["components"]) + \
        [c for r in results.values() for c in r["components"] if c not in next(iter(results.values()))["components"]]
    names = list(dict.fromkeys(names))
    lines = ["# Where a run's time goes (`mlops run`, its own process, wall seconds)", "",
             "| part | " + " | ".join(results) + " |", "|---|" + "---:|" * len(results)]

    def row(label, values):
        lines.append(f"| {label} | " + " | ".join("-" if v is None else f"{v}" for v in values) + " |")

    row("process (wall)", [r["wall_s"] for r in results.values()])
    row("start-up before the command", [r["before_command_s"] for r in results.values()])
    for name in names:
        row(name, [r["components"].get(name) for r in results.values()])
    for step in dict.fromkeys(s for r in results.values() for s in r["steps"]):
        row(step, [r["steps"].get(step) for r in results.values()])
    row("the rest (TFX/TF/Beam imports, ML Metadata, results)", [r["rest_s"] for r in results.values()])
    row("Trainer: first epoch", [r.get("trainer", {}).get("first_epoch_s") for r in results.values()])
    row("Trainer: median later epoch", [r.get("trainer", {}).get("median_epoch_s") for r in results.values()])
    row("Trainer: not epochs (input, build, export)", [r.get("trainer", {}).get("not_epochs_s")
                                                       for r in results.values()])
    bare = report["trainer_vs_bare_fit"]
    lines += ["", f"Trainer vs a bare `model.fit` (bench/bare_fit.py: same model, same transformed rows in "
              f"memory, same {bare['epochs']} epochs, no callbacks or export), default job: Trainer "
              f"{bare['trainer_s']} s, bare fit {bare['bare_fit_s']} s: **{bare['ratio']}x** (goal <= 1.5x).",
              "", f"Measured {report['measured_at']} on {report['machine']['cpus']} CPUs."]
    (RESULTS / "profile.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
