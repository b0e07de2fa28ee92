"""Runs a pipeline with LocalDagRunner, then reads back what happened and tracks it in MLflow."""
import os
import sys
import time
from typing import Optional

from core import run_report
from core.config import DRIFT_GATE_ID, PipelineConfig
from core.file_lock import held
from core.run_report import RunReport
from pipelines.runners.progress import ProgressLines
from serving.codec.model_extras import SERVING_MODEL_DIR

GATE_NODES = ("AnomaliesGate", DRIFT_GATE_ID)  # data gates: their failure message is the report


def failure_line(report: RunReport, error: str) -> str:
    """One line for an unexpected failure: which step stopped, on what, and where the rest is.
    (What preflight can check on the data is refused before the pipeline starts, exit 2.)"""
    failed = next((c.node for c in report.components if c.state == "FAILED"), None)
    first = next((line.strip() for line in error.splitlines() if line.strip()), error)
    where = f"{failed} stopped on this run's data" if failed else "the pipeline stopped"
    return f"{where}: {first[:300]} (the run's log has the traceback; --verbose shows it as it comes)"


def new_run_id() -> str:
    """TFX's own run id (the local time, ISO 8601) with this process's id: unique even when two
    processes start a run of any pipeline in the same microsecond (ML Metadata names the run's
    context by it alone)."""
    import datetime

    return f"{datetime.datetime.now().isoformat()}-{os.getpid()}"


def run_pipeline(config: PipelineConfig, track: bool = True, progress: Optional[ProgressLines] = None) -> RunReport:
    """One run, under its own run id, read back from ML Metadata by that id, with its baseline and
    MLflow tracking; ``progress`` (`mlops run`'s watcher) gets the component order and a line for
    each step after the pipeline. Runs of one pipeline on one home wait for each other."""
    say = progress.say if progress is not None else (lambda text: print(text, file=sys.stderr, flush=True))
    run_id = new_run_id()

    def wait(holder: str) -> None:  # two at once would read each other's executions, write one SQLite store
        say(f"waiting for run {holder} of pipeline {config.name} to finish")

    with held(config.home.run_lock(config.name), f"{run_id} (pid {os.getpid()})", wait):
        report = _execute(config, run_id, progress)
        _after_run(config, report, track, progress)
    return report


def _execute(config: PipelineConfig, run_id: str, progress: Optional[ProgressLines]) -> RunReport:
    """LocalDagRunner on the pipeline compiled with ``run_id`` as its pipeline run id (TFX would
    take the time of day), temporary files in a folder removed after (core.beam_runners)."""
    from tfx.dsl.compiler import compiler
    from tfx.dsl.compiler.constants import PIPELINE_RUN_ID_PARAMETER_NAME
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.orchestration.portable import runtime_parameter_utils

    from core.beam_runners import beam_temp_dir
    from pipelines.pipeline import create_pipeline

    pipeline = create_pipeline(config)
    if progress is not None:
        progress.expect([c.id for c in pipeline.components], lambda: run_report.collect_run(config, run_id))
    error = None
    try:
        # TfxRunner.run compiles too, after resolving components' pip dependencies: ours have none
        ir = compiler.Compiler().compile(pipeline)
        runtime_parameter_utils.substitute_runtime_parameter(ir, {PIPELINE_RUN_ID_PARAMETER_NAME: run_id})
        with beam_temp_dir():
            LocalDagRunner().run_with_ir(ir)
    except Exception as e:  # any component's failure: reported below, with what MLMD recorded
        error = f"{type(e).__name__}: {e}"
    if progress is not None:
        progress.close_run()
    report = run_report.collect_run(config, run_id)
    report.error = error
    if error and any(report.state_of(node) == "FAILED" for node in GATE_NODES):
        report.anomalies = error.split(": ", 1)[-1]
    elif error:
        report.error = failure_line(report, error)
    return report


def _after_run(config: PipelineConfig, report: RunReport, track: bool, progress: Optional[ProgressLines]) -> None:
    """The steps after the pipeline: baseline, teacher comparison, MLflow tracking, model card."""
    steps = []
    if report.metrics:
        steps.append(("baseline (scikit-learn)", lambda: add_baseline(config, report)))
    if config.series_table and report.metrics:
        steps.append(("holdout forecasts", lambda: add_holdout(config, report)))
    if report.model_info.get("distillation") and report.pushed_path:
        steps.append(("teacher comparison", lambda: add_teacher_comparison(report)))
    if track:
        steps.append(("MLflow tracking", lambda: track_run(config, report)))
    if report.blessed and report.pushed_now:
        steps.append(("model card", lambda: add_model_card(config, report)))
    for name, step in steps:
        started = time.monotonic()
        outcome = step()
        report.after_steps.append((name, time.monotonic() - started))
        if progress is not None:
            progress.step(name, outcome or "", report.after_steps[-1][1])


def add_baseline(config: PipelineConfig, report: RunReport) -> str:
    """The scikit-learn baseline on the run's own split, beside the model's metric (never fatal)."""
    from release.baseline import fit_baseline

    try:
        baseline = fit_baseline(config, report)
    except (ValueError, ArithmeticError) as e:  # a degenerate split: say so, keep the run
        report.baseline = {"error": f"{type(e).__name__}: {e}"}
        return "not fitted"
    if baseline is None:
        return "none for this task"
    report.baseline = {"model": baseline.model, "metric": baseline.metric, "value": baseline.value}
    return f"{baseline.model}: {baseline.metric} {baseline.value:.4f}"


def add_holdout(config: PipelineConfig, report: RunReport) -> str:
    """A user's series: the model, seasonal naive and ETS on each series' holdout, in its units."""
    from pathlib import Path

    from pipelines.configure import series_profile_again
    from pipelines.inputs.series_tables import holdout_split, holdout_windows
    from release.forecast_holdout import compare_on_holdout

    spec = config.series_table
    model_dir = report.pushed_path
    if not model_dir:
        trained = report.artifact_uris.get("Trainer", {}).get("Model")
        model_dir = str(Path(trained) / SERVING_MODEL_DIR) if trained else None
    profile = series_profile_again(spec)
    comparison = compare_on_holdout(model_dir, holdout_split(profile), holdout_windows(profile), spec.info, spec.season)
    report.holdout = comparison
    return f"MASE model {comparison.model.mase:.3f}, seasonal naive {comparison.seasonal_naive.mase:.3f}, " \
           f"ETS {comparison.ets.mase:.3f}" if comparison.model else "baselines only"


def add_teacher_comparison(report: RunReport) -> None:
    """Student and teacher side by side: eval accuracy (the Trainer's, on this run's eval split),
    parameters, SavedModel and int8 TF Lite size, TF Lite batch-1 latency."""
    from serving.edge_runtime import footprint

    facts = report.model_info["distillation"]
    report.teacher = {"teacher": {**facts["teacher"], **footprint(facts["teacher"]["model_dir"])},
                      "student": {**facts["student"], **footprint(report.pushed_path)},
                      "temperature": facts["temperature"], "alpha": facts["alpha"]}


def add_model_card(config: PipelineConfig, report: RunReport) -> str:
    """The newly pushed model's card into its assets.extra/, and to its MLflow run (never fatal: a
    card that cannot be written is said in the summary, the model stays pushed)."""
    from release.model_card import write_card

    try:
        path = write_card(config, report)
        if path is not None and report.mlflow_run_id:
            from release.tracking import log_card

            log_card(config, report.mlflow_run_id, path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        report.card_error = f"{type(e).__name__}: {e}"
        return f"not written ({report.card_error})"
    report.card_path = str(path) if path else None
    return str(path) if path else "none"


def track_run(config: PipelineConfig, report: RunReport) -> str:
    """Logs the run to MLflow (and registers a pushed model); a failure is recorded in the report,
    never raised: tracking must never cost the pipeline's own artifacts."""
    from release.tracking import log_run

    try:
        report.mlflow_run_id = log_run(config, report)
    except Exception as e:  # an unreachable server, a refused request, a full disk: all reported
        report.tracking_error = f"{type(e).__name__}: {e}"
        return "failed (see the summary)"
    return f"run {report.mlflow_run_id}" + (f", model version {report.model_version}" if report.model_version else "")
