"""Images per family on the photos use case (scikit-learn's two photos, 5 classes, 300 patches): eval
accuracy, parameters, SavedModel and TF Lite sizes, int8 parity and batch-1 latency, component
seconds; then transfer learning from the registered cnn (models:/photos_cnn@challenger) on a user-like
folder of three classes it has never seen in that form, and distillation of the cnn into a small cnn
against the same small cnn alone. All in one home, one after the other, the same day.
Writes bench/results/images.{json,md}."""
import json
import os
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FAMILIES = (("cnn", ()), ("resnet", ()), ("mobilenet", ()), ("vgg", ()))
SIZE = "48"  # the use case's default size


def _run(home: Path, *argv: str) -> dict:
    from cli.run import request_from_argv
    from pipelines.configure import build_config, prepare_inputs
    from pipelines.runners.local import run_pipeline

    config = prepare_inputs(build_config(request_from_argv([*argv, "--home", str(home)])))
    started = time.perf_counter()
    report = run_pipeline(config)
    wall = time.perf_counter() - started
    overall = report.metrics.get("overall", {})
    edge = report.edge.get("variants", {})
    row = {"run": " ".join(argv), "succeeded": report.succeeded, "blessed": report.blessed,
           "accuracy": round(overall.get("sparse_categorical_accuracy", float("nan")), 4),
           "parameters": report.model_info.get("parameters"), "epochs": report.model_info.get("epochs_run"),
           "components_s": round(sum(c.seconds for c in report.components), 1), "wall_s": round(wall, 1),
           "trainer_s": round(next((c.seconds for c in report.components if c.node == "Trainer"), 0.0), 1)}
    for variant in ("float32", "int8"):
        if variant in edge:
            row[f"{variant}_kib"] = round(edge[variant].get("size_bytes", 0) / 1024, 1)
            row[f"{variant}_drop"] = edge[variant].get("metric_drop")
    if report.pushed_path and (Path(report.pushed_path) / "tflite" / "int8.tflite").exists():
        from serving.edge_runtime import footprint

        facts = footprint(report.pushed_path)
        row.update(savedmodel_kib=round(facts["savedmodel_bytes"] / 1024), int8_p50_us=facts.get("int8_p50_us"))
    if report.model_info.get("transfer"):
        row["transfer"] = report.model_info["transfer"]
    if report.teacher:
        row["teacher"] = {k: v for k, v in report.teacher["teacher"].items() if k != "model_dir"}
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    from tests.messy_images import photo_folder

    rows = []
    with tempfile.TemporaryDirectory(prefix="mlops-images-") as tmp:
        home = Path(tmp) / "home"
        for family, extra in FAMILIES:
            rows.append(_run(home, "photos", "--name", f"photos_{family}", "--family", family, *extra))
        folder = photo_folder(Path(tmp) / "garden")[0]
        rows.append(_run(home, "--data", str(folder), "--name", "garden_scratch", "--hparam", "epochs=20"))
        rows.append(_run(home, "--data", str(folder), "--name", "garden_transfer", "--pretrained",
                         "models:/photos_cnn@challenger", "--hparam", "epochs=15", "--hparam", "fine_tune_epochs=5"))
        small = ("--image-size", SIZE, "--hparam", "filters=8")
        rows.append(_run(home, "photos", "--name", "photos_small", *small))
        rows.append(_run(home, "photos", "--name", "photos_student", "--distill-from", "models:/photos_cnn@challenger",
                         *small))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "images.json").write_text(json.dumps({"cpus": os.cpu_count(), "results": rows}, indent=1))
    lines = ["# Images: the photos use case per family, transfer learning, distillation", "",
             f"{os.cpu_count()} CPUs, one run after another in one home; accuracy on the eval split (66 patches); "
             "int8 latency: LiteRT, batch 1, p50.", "",
             "| run | accuracy | parameters | epochs | SavedModel KiB | float32 KiB | int8 KiB | int8 drop | "
             "int8 p50 us | Trainer s | components s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['run']}` | {r['accuracy']} | {r.get('parameters')} | {r.get('epochs')} | "
                     f"{r.get('savedmodel_kib', '')} | {r.get('float32_kib', '')} | {r.get('int8_kib', '')} | "
                     f"{r.get('int8_drop', '')} | {r.get('int8_p50_us', '')} | {r['trainer_s']} | "
                     f"{r['components_s']} |")
    (RESULTS / "images.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
