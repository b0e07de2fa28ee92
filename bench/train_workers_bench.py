"""`make bench`: the scale job's table (`mlops generate`'s transactions, 20 columns) trained by one
worker and by two (`mlops run --train-workers 2`, MultiWorkerMirroredStrategy over loopback), the
same epochs and batch: epoch time, step time and the eval AUC of each, side by side in one run. On
this 2-core machine no speed-up is expected: the figure is the cost of synchronizing every step.

    python bench/train_workers_bench.py [--rows 1000000]

Writes bench/results/train_workers.{json,md}.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
MLOPS = str(Path(sys.executable).with_name("mlops"))
EPOCHS, BATCH, DEPTH = 2, 256, 2  # a fixed depth: the dnn alone (no linear rival on small tables)


def _run(data: Path, workers: int, home: Path) -> dict:
    command = [MLOPS, "run", "--data", str(data), "--label", "is_fraud", "--task", "binary", "--name", "workers",
               "--home", str(home), "--no-edge", "--no-tracking", "--hparam", f"epochs={EPOCHS}", "--hparam",
               f"batch_size={BATCH}", "--hparam", f"depth={DEPTH}", "--train-workers", str(workers)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=7200)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"workers": workers, "error": (done.stdout + done.stderr).strip().splitlines()[-1]}
    info = json.loads(sorted(home.glob("pipelines/workers/Trainer/model_run/*/model.json"))[-1].read_text())
    trainer = next(line for line in done.stdout.splitlines() if line.strip().startswith("Trainer "))
    auc = next(float(line.split()[1]) for line in done.stdout.splitlines() if line.strip().startswith("auc "))
    train_rows = int(next(line for line in done.stdout.splitlines() if "StatisticsGen" in line and "train" in line)
                     .split("train ")[1].split(" rows")[0].replace(",", ""))
    epochs = info.get("epoch_seconds", [])
    steps = math.ceil(train_rows / BATCH)
    return {"workers": workers, "replicas_in_sync": info.get("replicas_in_sync"), "wall_seconds": round(wall, 1),
            "trainer_seconds": float(trainer.split()[2]), "epoch_seconds": [round(e, 2) for e in epochs],
            "step_ms": round(1000 * min(epochs) / steps, 2) if epochs else None, "steps_per_epoch": steps,
            "auc": auc, "train_rows": train_rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    from pipelines.inputs.synthetic import write_transactions

    results, loads = [], []
    with tempfile.TemporaryDirectory(prefix="mlops-workers-bench-") as tmp:
        data = write_transactions(Path(tmp) / "transactions.csv", args.rows, numeric=16)
        for workers in (1, 2):
            results.append(_run(data, workers, Path(tmp) / f"home{workers}"))
            loads.append(os.getloadavg()[0])
            print(json.dumps(results[-1]), flush=True)
    head = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(), "rows": args.rows,
            "epochs": EPOCHS, "batch": BATCH, "load_average_after_each": [round(x, 2) for x in loads]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_workers.json").write_text(json.dumps({**head, "runs": results}, indent=1) + "\n")
    lines = ["# Training on 1 vs 2 workers (issue 42)", "",
             f"{head['when']}; {head['cpus']} CPUs; {args.rows:,} generated rows x 20 columns; {EPOCHS} epochs, "
             f"global batch {BATCH}, dnn depth {DEPTH}; the whole `mlops run` each (--no-edge). Load average after "
             f"each run: {head['load_average_after_each']}.", "",
             "| workers | replicas in sync | Trainer s | epoch s | step ms | eval AUC | run s |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['workers']} | failed: {r['error']} | | | | | |")
            continue
        epochs = ", ".join(map(str, r["epoch_seconds"]))
        lines.append(f"| {r['workers']} | {r['replicas_in_sync']} | {r['trainer_seconds']} | {epochs} | "
                     f"{r['step_ms']} | {r['auc']:.4f} | {r['wall_seconds']} |")
    ok = [r for r in results if "error" not in r]
    if len(ok) == 2 and ok[0]["step_ms"] and ok[1]["step_ms"]:
        lines += ["", f"Step time with 2 workers: {ok[1]['step_ms'] / ok[0]['step_ms']:.2f}x one worker's (each "
                      "worker computes half the global batch, then both all-reduce the gradients); no speed-up is "
                      "expected on 2 cores."]
    (RESULTS / "train_workers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
