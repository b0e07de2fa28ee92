"""Preflight at scale: `mlops run --data` checks a table before TensorFlow loads, in one streaming
pass. Goal: 1M rows x 20 columns in <= 10 s and <= 300 MB peak resident memory. Each size runs in a
fresh process (its own peak RSS); the staged copy for ExampleGen is timed too (it is written once per
changed input). Writes bench/results/preflight.{json,md}."""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
GOAL = "1M rows x 20 columns: preflight <= 10 s and <= 300 MB peak RSS"
SIZES = (100_000, 1_000_000)
NUMERIC = 16  # + amount, segment, channel, label = 20 columns


def measure(path: str, staged: str) -> dict:
    """In the child: preflight, then staging; seconds and the peak RSS after each."""
    import resource

    from pipelines.inputs.preflight import FEATURE, LABEL, profile_source
    from pipelines.inputs.staging import stage
    from pipelines.inputs.tables import open_table

    started = time.perf_counter()
    source = open_table(Path(path))
    profile = profile_source(source, ["is_fraud"])
    preflight_s = time.perf_counter() - started
    preflight_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    keep = [c.key for c in profile.columns if c.role in (FEATURE, LABEL)]
    started = time.perf_counter()
    stage(source, Path(staged), keep, {c.key: c.kind.kind for c in profile.columns}, ["is_fraud"])
    return {"rows": profile.rows, "columns": len(profile.columns), "task": profile.task,
            "preflight_s": round(preflight_s, 2), "preflight_peak_mb": round(preflight_mb),
            "staging_s": round(time.perf_counter() - started, 2),
            "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(measure(sys.argv[2], sys.argv[3])))
        return 0
    from pipelines.inputs.synthetic import write_transactions

    results = []
    with tempfile.TemporaryDirectory(prefix="mlops-preflight-") as tmp:
        for rows in SIZES:
            data = Path(tmp) / f"rows-{rows}.csv"
            write_transactions(data, rows, numeric=NUMERIC)
            child = subprocess.run([sys.executable, __file__, "--child", str(data), str(Path(tmp) / "staged.csv")],
                                   capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
                                   env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
            result = {"file_mb": round(data.stat().st_size / 2 ** 20), **json.loads(child.stdout.splitlines()[-1])}
            results.append(result)
            print(result, flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "preflight.json").write_text(json.dumps({"goal": GOAL, "cpus": os.cpu_count(), "results": results},
                                                       indent=1))
    lines = [f"Goal: {GOAL}. {os.cpu_count()} CPUs.", "",
             "| rows | columns | file MB | preflight s | preflight peak RSS MB | staging s | peak RSS MB |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['rows']:,} | {r['columns']} | {r['file_mb']} | {r['preflight_s']} | {r['preflight_peak_mb']} | "
              f"{r['staging_s']} | {r['peak_mb']} |" for r in results]
    (RESULTS / "preflight.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
