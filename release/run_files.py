"""What a pipeline run leaves for people to look at, read from its artifacts for MLflow: data facts
(rows per split, span, schema hash, anomalies), the schema, the TFDV statistics as HTML, the
learning curve and the evaluation per slice as PNGs, and the lineage (ML Metadata ids, URIs)."""
import glob
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from components.gate_metrics import OVERALL
from core.config import PipelineConfig
from core.run_report import RunReport

SCHEMA_FILE = "schema.pbtxt"
STATS_FILE = "FeatureStats.pb"
ANOMALIES_FILE = "SchemaDiff.pb"


def examples_uri(report: RunReport) -> Optional[str]:
    """The raw examples (the ExampleGen's output, whichever ExampleGen the input needs)."""
    for node, uris in report.artifact_uris.items():
        if node.endswith("ExampleGen") and "Examples" in uris:
            return uris["Examples"]
    return None


def schema_file(report: RunReport) -> Optional[str]:
    for node in ("ImportSchemaGen", "SchemaGen"):
        uri = report.artifact_uris.get(node, {}).get("Schema")
        if uri and os.path.exists(os.path.join(uri, SCHEMA_FILE)):
            return os.path.join(uri, SCHEMA_FILE)
    return None


def _splits(uri: Optional[str], filename: str) -> Dict[str, str]:
    if not uri:
        return {}
    return {Path(path).parent.name.removeprefix("Split-"): path
            for path in sorted(glob.glob(os.path.join(uri, "Split-*", filename)))}


def read_statistics(report: RunReport) -> Dict[str, object]:
    """split -> DatasetFeatureStatisticsList (StatisticsGen's)."""
    import tensorflow_data_validation as tfdv

    return {split: tfdv.load_stats_binary(path)
            for split, path in _splits(report.artifact_uris.get("StatisticsGen", {}).get("ExampleStatistics"),
                                       STATS_FILE).items()}


def read_anomalies(report: RunReport) -> Dict[str, List[str]]:
    """split -> 'feature: description' per anomaly ExampleValidator found."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    found = {}
    uri = report.artifact_uris.get("ExampleValidator", {}).get("ExampleAnomalies")
    for split, path in _splits(uri, ANOMALIES_FILE).items():
        anomalies = anomalies_pb2.Anomalies.FromString(Path(path).read_bytes())
        found[split] = [f"{feature}: {info.short_description or info.description}"
                        for feature, info in sorted(anomalies.anomaly_info.items())]
    return found


@dataclass
class DataFacts:
    params: Dict[str, str]  # what the run's input was: span, version, schema hash
    metrics: Dict[str, float]  # what it held: rows per split, anomalies found per split


def data_facts(report: RunReport, statistics: Dict[str, object], anomalies: Dict[str, List[str]]) -> DataFacts:
    params = {f"data.{key}": str(value) for key, value in report.input_properties.items()}
    schema = schema_file(report)
    if schema:
        params["data.schema_sha256"] = hashlib.sha256(Path(schema).read_bytes()).hexdigest()
    metrics = {f"data.rows_{split}": float(stats.datasets[0].num_examples)
               for split, stats in statistics.items() if stats.datasets}
    metrics.update({f"data.anomalies_{split}": float(len(found)) for split, found in anomalies.items()})
    if report.training_spans:
        params["data.training_spans"] = ",".join(map(str, report.training_spans))
    if report.drift.get("previous_span") is not None:
        params["data.drift_reference_span"] = str(report.drift["previous_span"])
    metrics.update({f"data.drift_{row['feature']}": float(row["distance"])
                    for row in report.drift.get("features", []) if row.get("distance") is not None})
    return DataFacts(params, metrics)


def statistics_html(statistics: Dict[str, object]) -> Optional[str]:
    """TFDV's Facets view of train against eval (as tfdv.visualize_statistics shows it)."""
    from tensorflow_data_validation.utils.display_util import get_statistics_html

    if not statistics:
        return None
    names = sorted(statistics, key=lambda s: (s != "train", s))
    rhs = statistics[names[1]] if len(names) > 1 else None
    return get_statistics_html(statistics[names[0]], rhs_statistics=rhs, lhs_name=names[0],
                               rhs_name=names[1] if rhs else "")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curve_png(history: Dict[str, List[float]], path: Path) -> Optional[Path]:
    """Each metric against epochs, train and eval on the same axes (loss first)."""
    names = sorted({n.removeprefix("val_") for n in history if n != "lr"}, key=lambda n: (n != "loss", n))
    if not names:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for axis, name in zip(axes[0], names):
        for key, label in ((name, "train"), (f"val_{name}", "eval")):
            if key in history:
                axis.plot(range(1, len(history[key]) + 1), history[key], label=label)
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def evaluation_png(config: PipelineConfig, report: RunReport, path: Path) -> Optional[Path]:
    """The gate metric per slice for each target: candidate, baseline (when there was one) and the
    blessing bound, which is what decides whether a model ships."""
    from components.tasks import get_task

    panels = []
    for label, subtask in config.targets:
        metric = get_task(subtask).gate_metric
        key = metric if len(config.targets) == 1 else f"{label}/{metric}"
        slices = [s for s in report.metrics if key in report.metrics[s]]
        slices.sort(key=lambda s: (s != OVERALL, s))
        if slices:
            panels.append((label, key, slices))
    if not panels:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(len(panels), 1, figsize=(7, 0.45 * max(len(p[2]) for p in panels) * len(panels) + 1.6),
                                squeeze=False)
    for axis, (label, key, slices) in zip(axes[:, 0], panels):
        values = [report.metrics[s][key] for s in slices]
        changes = [report.metrics[s].get(f"{key}_change") for s in slices]
        positions = list(range(len(slices)))
        bars = axis.barh([p + 0.2 for p in positions], values, height=0.4, label="candidate")
        axis.bar_label(bars, fmt="%.3f", fontsize=7)
        if any(c is not None for c in changes):
            axis.barh([p - 0.2 for p in positions], [v - (c or 0.0) for v, c in zip(values, changes)],
                      height=0.4, label="baseline")
        bound = config.gate_thresholds.get(label)
        if bound is not None:
            axis.axvline(bound, color="red", linestyle="--", label=f"gate {bound:g}")
        axis.set_yticks(positions)
        counts = [report.metrics[s].get("example_count") for s in slices]
        axis.set_yticklabels([f"{s} (n={c:.0f})" if c else s for s, c in zip(slices, counts)])
        axis.invert_yaxis()
        axis.set_title(f"{key} on the eval split, per slice")
        axis.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def lineage(config: PipelineConfig, report: RunReport) -> dict:
    """How to find this run in ML Metadata: executions per node and the artifacts' URIs."""
    return {"pipeline": config.name, "pipeline_run_id": report.run_id,
            "metadata": str(config.home.metadata),
            "executions": {c.node: {"id": c.execution_id, "state": c.state, "seconds": round(c.seconds, 2)}
                           for c in report.components},
            "artifacts": report.artifact_uris}


def write_run_files(config: PipelineConfig, report: RunReport, out: Path, files: bool = True) -> DataFacts:
    """Writes the run's files for MLflow under ``out`` (by artifact folder) and returns the data facts;
    ``files=False``: the facts only (a fully cached rerun's files are the earlier run's)."""
    statistics, anomalies = read_statistics(report), read_anomalies(report)
    if not files:
        facts = data_facts(report, statistics, anomalies)
        if config.table:
            facts.metrics["data.rows_without_label"] = float(config.table.label_missing)
        return facts
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(exist_ok=True)
    schema = schema_file(report)
    if schema:
        (out / "data" / SCHEMA_FILE).write_bytes(Path(schema).read_bytes())
    html = statistics_html(statistics)
    if html:
        (out / "data" / "statistics.html").write_text(html)
    (out / "data" / "anomalies.json").write_text(json.dumps(anomalies, indent=1))
    if report.drift:
        (out / "data" / "drift.json").write_text(json.dumps(report.drift, indent=1))
    if report.anomalies:  # a data gate stopped the run: its report as printed
        (out / "data" / "gate_report.txt").write_text(report.anomalies + "\n")
    if config.table:  # the user's column names, the feature keys, kinds and what was left out
        table = config.table
        (out / "data" / "columns.json").write_text(json.dumps({
            "source": str(table.source), "read_as": table.description, "task_reason": table.task_reason,
            "columns": [{"name": name, "key": key, "kind": table.kinds.get(key, ""),
                         "left_out": table.left_out.get(key, "")} for name, key in table.columns],
            "rows": table.rows, "rows_without_label": table.label_missing}, indent=1))
    learning_curve_png(report.history, out / "plots" / "learning_curve.png")
    evaluation_png(config, report, out / "plots" / "evaluation.png")
    (out / "evaluation").mkdir(exist_ok=True)
    (out / "evaluation" / "metrics_by_slice.json").write_text(json.dumps(report.metrics, indent=1, sort_keys=True))
    (out / "lineage.json").write_text(json.dumps(lineage(config, report), indent=1))
    facts = data_facts(report, statistics, anomalies)
    if config.table:
        facts.metrics["data.rows_without_label"] = float(config.table.label_missing)
    return facts
