"""`make bench`: whole `mlops run`s on generated tables (`mlops generate`'s transactions, 20
columns): 5M rows on DirectRunner in-memory (data past what one machine's Trainer would hold in
memory: it streams), and 1M rows on DirectRunner multi-processing with 2 workers beside Beam's
portable runner with 2 SDK workers (issue 42): seconds and peak memory per component.

Each configuration is the real CLI in its own process and fresh home, the Trainer limited to a few
epochs (EPOCHS, batch BATCH); this script samples the resident memory of that process and its
children every 0.25 s and gives each component the peak seen while it ran (ML Metadata's start
and end). Writes bench/results/scale.{json,md}. Measured and reported, never asserted.

    python bench/scale_bench.py [--runs 5000000:in_memory 1000000:multi_processing 1000000:portable]
                                [--columns 20]
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
PORTABLE = "portable"  # Beam's portable runner beside DirectRunner's modes
GOAL = ("5M rows x 20 columns on DirectRunner: whole run <= 25 min and <= 4 GB peak RSS (process tree); 1M rows on "
        "the portable runner with 2 SDK workers within 1.5x of DirectRunner multi_processing with 2")
BIG_ROWS, BIG_SECONDS, BIG_MB, PORTABLE_RATIO = 5_000_000, 25 * 60, 4096, 1.5


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
    """One run: DirectRunner in ``mode``, or ``portable``: Beam's Python job service and an EXTERNAL
    worker pool (ops.beam_services, started for this run and stopped after it), asked for
    ``workers`` SDK workers (--sdk_worker_parallelism)."""
    with tempfile.TemporaryDirectory(prefix="mlops-scale-") as home:
        if mode != PORTABLE:
            return _measure_in(home, data, rows, mode, workers, ["--beam-mode", mode, "--beam-workers", str(workers)])
        from ops import beam_services

        services = beam_services.start(Path(home) / "beam-services")
        try:
            return _measure_in(home, data, rows, mode, workers,
                               ["--runner", "portable", "--job-endpoint", services.job_endpoint, "--worker-pool",
                                services.worker_pool, "--beam-workers", str(workers)], services.pids)
        finally:
            beam_services.stop(services)


def _measure_in(home: str, data: str, rows: int, mode: str, workers: int, runner: list, others=()) -> dict:
    """``others``: process groups beside the run (the portable runner's services): their memory counts."""
    command = [MLOPS, "run", "--data", data, "--label", "is_fraud", "--task", "binary", "--name", NAME,
               "--home", home, "--hparam", f"epochs={EPOCHS}", "--hparam", f"batch_size={BATCH}", *runner]
    since = int(time.time() * 1000) - 1000
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples = []  # (unix ms, bytes)

    loads = []  # the machine's 1-minute load average: other work shares the CPU when it exceeds the run's own

    def sample():
        while process.poll() is None:
            samples.append((time.time() * 1000, _tree_rss(process.pid) + sum(_tree_rss(pid) for pid in others)))
            if len(samples) % 40 == 0:
                loads.append(os.getloadavg()[0])
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate(timeout=3600)
    sampler.join()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        failed = [line for line in output.strip().splitlines() if "error" in line.lower() or "FAILED" in line]
        log = Path(home) / "logs"
        tail = [line for path in sorted(log.rglob("*.log")) for line in path.read_text(errors="replace").splitlines()
                if "Error" in line][-3:] if log.exists() else []
        return {"rows": rows, "mode": mode, "workers": workers, "error": " | ".join((failed or ["?"])[-2:] + tail)}
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
    args.add_argument("--runs", nargs="+", default=["5000000:in_memory", "1000000:multi_processing",
                                                     "1000000:" + PORTABLE],
                      help="ROWS:MODE (in_memory, multi_threading, multi_processing, portable) each")
    args.add_argument("--columns", type=int, default=20, help="columns of the table, the label included (>= 5)")
    options = args.parse_args()
    from pipelines.inputs.synthetic import write_transactions

    results, tables = [], {}
    with tempfile.TemporaryDirectory(prefix="mlops-scale-data-") as data_dir:
        for run in options.runs:
            rows, mode = int(run.split(":")[0]), run.split(":")[1]
            if rows not in tables:
                tables[rows] = write_transactions(Path(data_dir) / f"rows{rows}" / "transactions.csv", rows,
                                                  numeric=options.columns - 4)
            workers = 2 if mode in ("multi_processing", PORTABLE) else 1
            result = {**measure(str(tables[rows]), rows, mode, workers), "columns": options.columns,
                      "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            print(json.dumps(result), flush=True)
            results.append(result)
            _write(results)  # after each configuration: a long run that is stopped keeps what it measured
    return 0


def _merged(results: list) -> list:
    """The results file's earlier runs that this invocation did not redo, then this invocation's."""
    path = RESULTS / "scale.json"
    earlier = json.loads(path.read_text()).get("results", []) if path.exists() else []
    redone = {(r["rows"], r["mode"]) for r in results}
    return [r for r in earlier if (r["rows"], r["mode"]) not in redone] + results


def _write(results: list) -> None:
    results = _merged(results)
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
    lines += _verdicts(results)
    (RESULTS / "scale.md").write_text("\n".join(lines))


def _verdicts(results: list) -> list:
    """Each goal met or NOT met, from the runs that measure it."""
    done = [r for r in results if "error" not in r]
    lines = []
    for r in done:
        if r["rows"] >= BIG_ROWS and r["mode"] != PORTABLE:
            met = r["wall_seconds"] <= BIG_SECONDS and r["peak_rss_mb"] <= BIG_MB
            lines.append(f"- {r['rows']:,} rows ({r['mode']}): {r['wall_seconds'] / 60:.1f} min, {r['peak_rss_mb']} MB "
                         f"peak (goal <= {BIG_SECONDS // 60} min, <= {BIG_MB} MB): {'met' if met else 'NOT met'}; "
                         f"mean load average {r.get('load_average_mean')} on {os.cpu_count()} CPUs")
    for rows in sorted({r["rows"] for r in done}):
        by_mode = {r["mode"]: r for r in done if r["rows"] == rows}
        if PORTABLE in by_mode and "multi_processing" in by_mode:
            ratio = by_mode[PORTABLE]["wall_seconds"] / by_mode["multi_processing"]["wall_seconds"]
            lines.append(f"- {rows:,} rows, portable (2 SDK workers) vs DirectRunner multi_processing (2): "
                         f"{ratio:.2f}x (goal <= {PORTABLE_RATIO}x): {'met' if ratio <= PORTABLE_RATIO else 'NOT met'}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
