"""`make bench`: `mlops run` against TFX's own penguin example, cold, side by side in one run.

Settings, stated so the comparison can be repeated:
- TFX: ``tfx/examples/penguin/penguin_pipeline_local.py`` of the installed tfx 1.16.0, its
  ``create_pipeline`` with the arguments of its ``__main__`` (Keras module file, Tuner with 6
  trials, Trainer 100 steps, Evaluator, Pusher, DirectRunner multi_processing with auto workers)
  except ``enable_bulk_inferrer=False``, as the issue measured. It runs in its own Keras 3 mode
  (``TF_USE_LEGACY_KERAS=0``: with the legacy switch its Tuner refuses the tf_keras model).
- Data: the example's CSV (penguins_processed.csv) does not ship with tfx; the same 334 rows do, as
  TFRecords in tfx's testdata (4 scaled measurements and the species), and are written back as that
  CSV here.
- Ours: ``mlops run --data penguins_processed.csv --label species --task multiclass --tune random
  --max-trials 6`` in a fresh home (adds preflight, EdgeExport and MLflow tracking).
Writes bench/results/penguin.{json,md}: process wall and seconds per component of both.

    python bench/penguin_bench.py
"""
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import components  # noqa: E402,F401 (sets the legacy-Keras switch before TensorFlow loads)

RESULTS = Path(__file__).resolve().parent / "results"
MLOPS = str(Path(sys.executable).with_name("mlops"))
GOAL = "mlops run <= 0.4x TFX's penguin_pipeline_local.py, cold"
COLUMNS = ["species", "culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]
TFX_PIPELINE = "penguin_local_keras"

RUN_TFX_EXAMPLE = """
import os, sys
from absl import flags
from tfx import v1 as tfx
from tfx.examples.penguin import penguin_pipeline_local as example
flags.FLAGS(["penguin"])
root = os.environ["HOME"]
tfx.orchestration.LocalDagRunner().run(example.create_pipeline(
    pipeline_name="penguin_local_keras", pipeline_root=os.path.join(root, "tfx", "pipelines"),
    data_root=os.path.join(root, "penguin", "data"),
    module_file=os.path.join(os.path.dirname(example.__file__), "penguin_utils_keras.py"),
    accuracy_threshold=0.6, serving_model_dir=os.path.join(root, "penguin", "serving_model"),
    metadata_path=os.path.join(root, "tfx", "metadata.sqlite"), user_provided_schema_path=None,
    enable_tuning=True, enable_bulk_inferrer=False, examplegen_input_config=None,
    examplegen_range_config_date=None, resolver_range_config=None,
    beam_pipeline_args=example._beam_pipeline_args_by_runner["DirectRunner"],
    enable_transform_input_cache=True, enable_example_diff=False))
"""


def write_penguins_csv(path: Path) -> Path:
    """The example's CSV from the rows tfx ships as testdata TFRecords."""
    import tensorflow as tf
    import tfx

    testdata = Path(tfx.__file__).parent / "components" / "testdata" / "penguin" / "data"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for record in tf.data.TFRecordDataset([str(p) for p in sorted(testdata.glob("Split-*/*.gz"))], "GZIP"):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            writer.writerow([feature["species"].int64_list.value[0],
                             *(f"{feature[c].float_list.value[0]:.6f}" for c in COLUMNS[1:])])
    return path


def _timed(command: list, env: dict) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"{command[:3]} failed:\n{result.stdout[-3000:]}")
    return round(time.perf_counter() - start, 1)


def _components(root: Path, name: str, since_ms: int) -> dict:
    from core.home import Home
    from core.run_report import collect

    report = collect(SimpleNamespace(name=name, home=Home(root)), since_ms)
    return {c.node: round(c.seconds, 1) for c in report.components if c.seconds >= 0.05}


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="mlops-penguin-"))
    data = write_penguins_csv(work / "penguin" / "data" / "labelled" / "penguins_processed.csv")
    results = {}

    scratch = work / "tmp"  # TFX's example packages its module file (and itself) per component into TMPDIR
    scratch.mkdir()
    env = {**os.environ, "HOME": str(work), "TMPDIR": str(scratch), "TF_USE_LEGACY_KERAS": "0",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    since = int(time.time() * 1000) - 1000
    wall = _timed([sys.executable, "-c", RUN_TFX_EXAMPLE], env)
    tfx_parts = _components(work / "tfx", TFX_PIPELINE, since)
    results["tfx_example"] = {"wall_seconds": wall, "components_seconds": round(sum(tfx_parts.values()), 1),
                              "components": tfx_parts}

    home = work / "mlops-home"
    since = int(time.time() * 1000) - 1000
    wall = _timed([MLOPS, "run", "--data", str(data), "--label", "species", "--task", "multiclass",
                      "--name", "penguins", "--tune", "random", "--max-trials", "6", "--home", str(home)],
                     {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    ours = _components(home, "penguins", since)
    results["mlops_run"] = {"wall_seconds": wall, "components_seconds": round(sum(ours.values()), 1),
                            "components": ours}
    ratio = round(results["mlops_run"]["wall_seconds"] / results["tfx_example"]["wall_seconds"], 2)
    summary = {"goal": GOAL, "cpus": os.cpu_count(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "rows": 334, "ratio_wall": ratio, **results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "penguin.json").write_text(json.dumps(summary, indent=2) + "\n")
    nodes = list(dict.fromkeys([*tfx_parts, *ours]))
    lines = [f"Goal: {GOAL}. {os.cpu_count()} CPUs, 334 rows, cold, one after the other. "
             f"Settings: bench/penguin_bench.py's docstring.", "",
             f"Process wall: TFX's example {results['tfx_example']['wall_seconds']} s, mlops run "
             f"{results['mlops_run']['wall_seconds']} s: **{ratio}x**.", "",
             "| component | TFX example s | mlops run s |", "|---|---:|---:|"]
    lines += [f"| {n} | {tfx_parts.get(n, '-')} | {ours.get(n, '-')} |" for n in nodes]
    lines.append(f"| components total | {results['tfx_example']['components_seconds']} | "
                 f"{results['mlops_run']['components_seconds']} |")
    (RESULTS / "penguin.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)  # both homes, the data and TFX's packages (~45 MB a component)
    return 0


if __name__ == "__main__":
    sys.exit(main())
