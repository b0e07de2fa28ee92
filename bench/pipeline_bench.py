"""`make bench`: the default job end to end, cold (fresh home) and cached (a rerun), per component.

Writes bench/results/pipeline.json and bench/results/pipeline.md. A script, not a test: numbers
are measured and reported, never asserted.
"""
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import components  # noqa: E402,F401 (sets the legacy-Keras switch before TensorFlow loads)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = Path(__file__).resolve().parent / "results"


def _components(report) -> dict:
    return {c.node: {"state": c.state, "seconds": round(c.seconds, 2)} for c in report.components}


def main() -> int:
    from absl import logging as absl_logging

    from pipelines.configure import RunRequest, build_config, prepare_inputs

    absl_logging.set_verbosity(absl_logging.WARNING)
    home = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
    config = prepare_inputs(build_config(RunRequest(home=str(home))))
    t0 = time.perf_counter()
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner  # noqa: F401 (timed: paid once per process)

    from pipelines.pipeline import create_pipeline  # noqa: F401
    from pipelines.runners.local import run_pipeline

    import_seconds = time.perf_counter() - t0
    runs = {}
    for label in ("cold", "cached"):
        start = time.perf_counter()
        report = run_pipeline(config)
        runs[label] = {"wall_seconds": round(time.perf_counter() - start, 2), "succeeded": report.succeeded,
                       "blessed": report.blessed, "pushed_this_run": report.pushed_now,
                       "components": _components(report)}
    result = {
        "pipeline": config.name, "home": str(home), "rows": sum(1 for _ in open(config.data_path)) - 1,
        "machine": {"python": sys.version.split()[0], "cpus": os.cpu_count(), "platform": platform.platform()},
        "import_seconds": round(import_seconds, 2), "runs": runs,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pipeline.json").write_text(json.dumps(result, indent=2) + "\n")
    nodes = list(runs["cold"]["components"])
    lines = ["| component | cold s | cached s |", "|---|---:|---:|"]
    for node in nodes:
        cached = runs["cached"]["components"].get(node, {})
        lines.append(f"| {node} | {runs['cold']['components'][node]['seconds']:.1f} | "
                     f"{cached.get('seconds', float('nan')):.1f} ({cached.get('state', '-')}) |")
    lines.append(f"| **wall total** | {runs['cold']['wall_seconds']:.1f} | {runs['cached']['wall_seconds']:.1f} |")
    lines.append(f"\nTFX/TensorFlow imports before the runs (paid once per process): {import_seconds:.1f} s")
    (RESULTS / "pipeline.md").write_text(
        f"# Pipeline benchmark ({config.name}, {result['rows']} rows, {result['machine']['cpus']} CPUs)\n\n"
        + "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
