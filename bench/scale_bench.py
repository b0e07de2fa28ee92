"""`make bench`: StatisticsGen + Transform (with ExampleGen before them) at scale, on synthetic
rows (`mlops generate`), DirectRunner in-memory vs multi-processing with 2 workers.

Each configuration runs in its own process (a partial pipeline run up to Transform, in a fresh
home) while this script samples the resident memory of that process and its children. Writes
bench/results/scale.{json,md}. Numbers are measured and reported, never asserted.

    python bench/scale_bench.py [--rows 100000 1000000] [--modes in_memory multi_processing]
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
NODES = ("CsvExampleGen", "StatisticsGen", "SchemaGen", "Transform")
GOAL = "1M rows <= 180 s and <= 4 GB peak RSS (StatisticsGen + Transform)"


def run_one(data: str, mode: str, workers: int, home: str) -> dict:
    """In the child process: the pipeline up to Transform; seconds per component."""
    from absl import logging as absl_logging
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.orchestration.pipeline import RunOptions

    from core.run_report import collect
    from pipelines.configure import RunRequest, build_config, prepare_inputs
    from pipelines.pipeline import create_pipeline

    absl_logging.set_verbosity(absl_logging.WARNING)
    request = RunRequest(data=data, label="is_fraud", task="binary", name="scale", home=home, edge=False,
                         beam_mode=mode, beam_workers=workers)
    config = prepare_inputs(build_config(request))
    started = int(time.time() * 1000) - 1000
    LocalDagRunner().run(create_pipeline(config), run_options=RunOptions(to_nodes=["Transform"]))
    report = collect(config, started)
    return {c.node: round(c.seconds, 1) for c in report.components if c.node in NODES}


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        process = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
    except psutil.Error:
        return 0


def measure(data: str, rows: int, mode: str, workers: int) -> dict:
    home = tempfile.mkdtemp(prefix="mlops-scale-")
    out = Path(home) / "result.json"
    command = [sys.executable, __file__, "--one", data, mode, str(workers), home, str(out)]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        while process.poll() is None:
            peak[0] = max(peak[0], _tree_rss(process.pid))
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate(timeout=3600)
    sampler.join()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        return {"rows": rows, "mode": mode, "workers": workers, "error": stderr.strip().splitlines()[-1]}
    seconds = json.loads(out.read_text())
    return {"rows": rows, "mode": mode, "workers": workers, "wall_seconds": round(wall, 1),
            "components": seconds, "stats_plus_transform_seconds": round(
                seconds.get("StatisticsGen", 0) + seconds.get("Transform", 0), 1),
            "peak_rss_mb": round(peak[0] / 2 ** 20)}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        data, mode, workers, home, out = sys.argv[2:7]
        Path(out).write_text(json.dumps(run_one(data, mode, int(workers), home)))
        return 0
    args = argparse.ArgumentParser()
    args.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    args.add_argument("--modes", nargs="+", default=["in_memory", "multi_processing"])
    options = args.parse_args()
    from pipelines.inputs.synthetic import write_transactions

    data_dir = Path(tempfile.mkdtemp(prefix="mlops-scale-data-"))
    results = []
    for rows in options.rows:
        data = write_transactions(data_dir / f"rows{rows}" / "transactions.csv", rows)
        for mode in options.modes:
            workers = 2 if mode == "multi_processing" else 1
            result = measure(str(data), rows, mode, workers)
            print(json.dumps(result), flush=True)
            results.append(result)
            _write(results)  # after each configuration: a long run that is stopped keeps what it measured
    return 0


def _write(results: list) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {"goal": GOAL, "cpus": os.cpu_count(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "results": results}
    (RESULTS / "scale.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"Goal: {GOAL}. {os.cpu_count()} CPUs.", "",
             "| rows | Beam mode | ExampleGen s | StatisticsGen s | Transform s | Stats+Transform s | peak RSS MB |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for r in results:
        c = r.get("components", {})
        lines.append(f"| {r['rows']:,} | {r['mode']} ({r['workers']}) | {c.get('CsvExampleGen', '-')} | "
                     f"{c.get('StatisticsGen', '-')} | {c.get('Transform', '-')} | "
                     f"{r.get('stats_plus_transform_seconds', r.get('error', '-'))} | {r.get('peak_rss_mb', '-')} |")
    (RESULTS / "scale.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
