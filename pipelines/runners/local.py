"""Runs a pipeline with LocalDagRunner, then reads back what happened and tracks it in MLflow."""
import time

from core import run_report
from core.config import DRIFT_GATE_ID, PipelineConfig
from core.run_report import RunReport

GATE_NODES = ("AnomaliesGate", DRIFT_GATE_ID)  # data gates: their failure message is the report


def run_pipeline(config: PipelineConfig, track: bool = True) -> RunReport:
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from pipelines.pipeline import create_pipeline

    started_ms = int(time.time() * 1000) - 1000
    error = None
    try:
        LocalDagRunner().run(create_pipeline(config))
    except Exception as e:  # any component's failure: reported below, with what MLMD recorded
        error = f"{type(e).__name__}: {e}"
    report = run_report.collect(config, started_ms)
    report.error = error
    if error and any(report.state_of(node) == "FAILED" for node in GATE_NODES):
        report.anomalies = error.split(": ", 1)[-1]
    if report.metrics:
        add_baseline(config, report)
    if report.model_info.get("distillation") and report.pushed_path:
        add_teacher_comparison(report)
    if track:
        track_run(config, report)
    return report


def add_baseline(config: PipelineConfig, report: RunReport) -> None:
    """The scikit-learn baseline on the run's own split, beside the model's metric (never fatal)."""
    from release.baseline import fit_baseline

    try:
        baseline = fit_baseline(config, report)
    except (ValueError, ArithmeticError) as e:  # a degenerate split: say so, keep the run
        report.baseline = {"error": f"{type(e).__name__}: {e}"}
        return
    if baseline is not None:
        report.baseline = {"model": baseline.model, "metric": baseline.metric, "value": baseline.value}


def add_teacher_comparison(report: RunReport) -> None:
    """Student and teacher side by side: eval accuracy (the Trainer's, on this run's eval split),
    parameters, SavedModel and int8 TF Lite size, TF Lite batch-1 latency."""
    from serving.edge_runtime import footprint

    facts = report.model_info["distillation"]
    report.teacher = {"teacher": {**facts["teacher"], **footprint(facts["teacher"]["model_dir"])},
                      "student": {**facts["student"], **footprint(report.pushed_path)},
                      "temperature": facts["temperature"], "alpha": facts["alpha"]}


def track_run(config: PipelineConfig, report: RunReport) -> None:
    """Logs the run to MLflow (and registers a pushed model); a failure is recorded in the report,
    never raised: tracking must never cost the pipeline's own artifacts."""
    from release.tracking import log_run

    try:
        report.mlflow_run_id = log_run(config, report)
    except Exception as e:  # an unreachable server, a refused request, a full disk: all reported
        report.tracking_error = f"{type(e).__name__}: {e}"
