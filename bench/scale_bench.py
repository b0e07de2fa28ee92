"""`make bench`: one whole `mlops run` on a million generated rows (`mlops generate`), DirectRunner
in-memory and, beside it, multi-processing with 2 workers: seconds and peak memory per component.

Each configuration is the real CLI in its own process and fresh home, the Trainer limited to a few
epochs (EPOCHS, batch BATCH); this script samples the resident memory of that process and its
children every 0.25 s and gives each component the peak seen while it ran (ML Metadata's start
and end). Writes bench/results/scale.{json,md}. Measured and reported, never asserted.

    python bench/scale_bench.py [--rows 1000000] [--modes in_memory multi_processing]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import components  # noqa: E402,F401 (sets the legacy-Keras switch before TensorFlow loads)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = Path(__file__).resolve().parent / "results"
MLOPS = str(Path(sys.executable).with_name("mlops"))
NAME, EPOCHS, BATCH = "scale", 2, 256
GOAL = "1M rows: whole run <= 480 s and <= 4 GB peak RSS; CsvExampleGen <= 60 s"


def _components(home: str, since_ms: int) -> list:
    from types import SimpleNamespace

    from core.home import Home
    from core.run_report import collect

    report = collect(SimpleNamespace(name=NAME, home=Home(Path(home))), since_ms)
    return [{"node": c.node, "state": c.state, "seconds": round(c.seconds, 1), "started_ms": c.started_ms}
            for c in report.components]


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        process = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
    except psutil.Error:
        return 0


def measure(data: str, rows: int, mode: str, workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="mlops-scale-") as home:
        return _measure_in(home, data, rows, mode, workers)


def _measure_in(home: str, data: str, rows: int, mode: str, workers: int) -> dict:
    command = [MLOPS, "run", "--data", data, "--label", "is_fraud", "--task", "binary", "--name", NAME,
               "--home", home, "--hparam", f"epochs={EPOCHS}", "--hparam", f"batch_size={BATCH}",
               "--beam-mode", mode, "--beam-workers", str(workers)]
    since = int(time.time() * 1000) - 1000
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples = []  # (unix ms, bytes)

    loads = []  # the machine's 1-minute load average: other work shares the CPU when it exceeds the run's own

    def sample():
        while process.poll() is None:
            samples.append((time.time() * 1000, _tree_rss(process.pid)))
            if len(samples) % 40 == 0:
                loads.append(os.getloadavg()[0])
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate(timeout=3600)
    sampler.join()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        return {"rows": rows, "mode": mode, "workers": workers, "error": output.strip().splitlines()[-1]}
    parts = _components(home, since)
    for part in parts:
        end = part["started_ms"] + part["seconds"] * 1000
        seen = [rss for at, rss in samples if part["started_ms"] <= at <= end]
        part["peak_rss_mb"] = round(max(seen) / 2 ** 20) if seen else None
        del part["started_ms"]
    return {"rows": rows, "mode": mode, "workers": workers, "wall_seconds": round(wall, 1),
            "components_seconds": round(sum(p["seconds"] for p in parts), 1), "components": parts,
            "peak_rss_mb": round(max(rss for _, rss in samples) / 2 ** 20), "epochs": EPOCHS, "batch_size": BATCH,
            "load_average_mean": round(sum(loads) / len(loads), 2) if loads else None}


def main() -> int:
    args = argparse.ArgumentParser()
    args.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    args.add_argument("--modes", nargs="+", default=["in_memory", "multi_processing"])
    args.add_argument("--columns", type=int, default=16, help="columns of the table, the label included (>= 5)")
    options = args.parse_args()
    from pipelines.inputs.synthetic import write_transactions

    results = []
    with tempfile.TemporaryDirectory(prefix="mlops-scale-data-") as data_dir:
        for rows in options.rows:
            data = write_transactions(Path(data_dir) / f"rows{rows}" / "transactions.csv", rows,
                                      numeric=options.columns - 4)
            for mode in options.modes:
                workers = 2 if mode == "multi_processing" else 1
                result = {**measure(str(data), rows, mode, workers), "columns": options.columns}
                print(json.dumps(result), flush=True)
                results.append(result)
                _write(results)  # after each configuration: a long run that is stopped keeps what it measured
    return 0


def _write(results: list) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {"goal": GOAL, "cpus": os.cpu_count(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "results": results}
    (RESULTS / "scale.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"Goal: {GOAL}. {os.cpu_count()} CPUs. Trainer: {EPOCHS} epochs, batch {BATCH}.", ""]
    for r in results:
        lines += [f"### {r['rows']:,} rows, Beam {r['mode']} ({r['workers']})", ""]
        if "error" in r:
            lines += [f"failed: {r['error']}", ""]
            continue
        lines += [f"process wall {r['wall_seconds']} s, components {r['components_seconds']} s, "
                  f"peak RSS {r['peak_rss_mb']} MB", "", "| component | seconds | peak RSS MB |", "|---|---:|---:|"]
        lines += [f"| {p['node']} | {p['seconds']} | {p['peak_rss_mb'] if p['peak_rss_mb'] is not None else '-'} |"
                  for p in r["components"] if p["seconds"] >= 0.1]
        lines.append("")
    (RESULTS / "scale.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
