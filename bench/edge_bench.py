"""`make bench` (edge part): per TF Lite variant, file size, batch-1 latency (LiteRT) and the task
metric against the SavedModel's on the eval split, for the default tabular model and for the
`mobilenet` and `resnet` families on digits.

The default model comes from the pipeline bench's home (bench/results/pipeline.json); the digits
models are trained here (a few epochs: the point is the export, not the accuracy). Writes
bench/results/edge.json and edge.md; numbers are reported, never asserted.
"""
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import components  # noqa: E402,F401 (sets the legacy-Keras switch before TensorFlow loads)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = Path(__file__).resolve().parent / "results"
# mobilenet's defaults (7 groups, 1280 final filters) are built for large images: on 8x8 digits
# they did not learn in 8 epochs (eval accuracy 0.08), 3 groups and 256 filters reach 0.99.
DIGITS_RUNS = {"mobilenet": ["--hparam", "groups=3", "--hparam", "last_filters=256", "--hparam", "epochs=15"],
               "resnet": ["--hparam", "depth=18", "--hparam", "epochs=5"]}


def _edge_report(home: Path, name: str) -> Optional[dict]:
    reports = sorted((home / "pipelines" / name / "EdgeExport").glob("*/*/edge_report.json"),
                     key=lambda p: int(p.parent.name))
    return json.loads(reports[-1].read_text()) if reports else None


def _latest_version(home: Path, name: str) -> Path:
    return max((home / "serving" / name).glob("[0-9]*"), key=lambda p: int(p.name))


def _measure(home: Path, name: str, label: str) -> List[Dict[str, object]]:
    from serving.edge_runtime import bench

    report = _edge_report(home, name)
    if report is None:
        return [{"model": label, "variant": "-", "note": "no EdgeExport output"}]
    tflite_dir = _latest_version(home, name) / "tflite"
    rows = []
    for variant, entry in report["variants"].items():
        row = {"model": label, "variant": variant, "size_kib": round(entry.get("size_bytes", 0) / 1024, 1),
               "metric": entry.get("metric", ""), "value": entry.get("value"), "saved_model": entry.get("reference"),
               "max_abs_diff": entry.get("max_abs_diff"), "shipped": bool(entry.get("accepted")),
               "reason": entry.get("reason", "")}
        path = tflite_dir / f"{variant}.tflite"
        if path.exists():
            timing = bench(path, runs=2000)
            row.update(p50_us=timing["p50_us"], p99_us=timing["p99_us"])
        rows.append(row)
    return rows


def main() -> int:
    from cli.main import main as cli_main

    recorded = RESULTS / "pipeline.json"
    home = Path(json.loads(recorded.read_text()).get("home", "/nonexistent")) if recorded.exists() else None
    if home is None or _edge_report(home, "fraud") is None:
        home = Path(tempfile.mkdtemp(prefix="mlops-edge-bench-"))
        cli_main(["run", "--home", str(home), "--no-tracking"])
    rows = _measure(home, "fraud", "fraud dnn (30 features)")
    digits_home = Path(tempfile.mkdtemp(prefix="mlops-edge-digits-"))
    for family, args in DIGITS_RUNS.items():
        name = f"digits_{family}"
        cli_main(["run", "digits", "--family", family, "--name", name, "--home", str(digits_home), "--no-tracking",
                  *args])
        rows += _measure(digits_home, name, f"digits {family}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"rows": rows, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpus": os.cpu_count()}
    (RESULTS / "edge.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Edge (TF Lite) benchmark", "",
             "| model | variant | KiB | p50 us | p99 us | metric | TF Lite | SavedModel | max abs diff | shipped |",
             "|---|---|---:|---:|---:|---|---:|---:|---:|---|"]
    fmt = lambda v, spec: format(v, spec) if isinstance(v, (int, float)) else "-"  # noqa: E731
    for r in rows:
        shipped = "yes" if r.get("shipped") else f"no: {r.get('reason', '')}"
        lines.append(f"| {r['model']} | {r['variant']} | {r.get('size_kib', '-')} | {r.get('p50_us', '-')} | "
                     f"{r.get('p99_us', '-')} | {r.get('metric', '')} | {fmt(r.get('value'), '.4f')} | "
                     f"{fmt(r.get('saved_model'), '.4f')} | {fmt(r.get('max_abs_diff'), '.1e')} | {shipped} |")
    lines.append(f"\nMeasured {result['measured_at']} on {result['cpus']} CPUs (LiteRT interpreter, 1 thread).")
    (RESULTS / "edge.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
