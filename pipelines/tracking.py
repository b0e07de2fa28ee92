"""MLflow tracking of a pipeline run: one MLflow run per pipeline run, experiment = pipeline name.

Logged after the pipeline finishes (not inside the Trainer), from what the run left in ML Metadata:
config and hyperparameters as params, per-epoch metrics with the epoch as step, final eval metrics,
and blessing, push and lineage facts as tags. ``MLFLOW_TRACKING_URI`` overrides the home's store.
"""
import json
import os
import time
from typing import Dict

from pipelines.config import PipelineConfig
from pipelines.report import OVERALL, RunReport

MAX_PARAM_CHARS = 6000
TUNER_RESULTS_FILE = "tuner_results.json"  # written by TFX's Tuner: one row per completed trial


def tracking_uri(config: PipelineConfig) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or config.home.mlflow_uri


def _experiment_id(client, config: PipelineConfig) -> str:
    experiment = client.get_experiment_by_name(config.name)
    if experiment is not None:
        return experiment.experiment_id
    location = (config.home.mlflow_artifacts / config.name).as_uri()
    return client.create_experiment(config.name, artifact_location=location)


def _params(config: PipelineConfig, report: RunReport) -> Dict[str, str]:
    params = {k: str(v) for k, v in config.as_params().items()}
    for key, value in report.model_info.get("hparams", dict(config.hparams)).items():
        params[f"hparam.{key}"] = str(value)
    for key in ("parameters", "epochs_run", "best_epoch"):
        if key in report.model_info:
            params[f"model.{key}"] = str(report.model_info[key])
    return {k: v[:MAX_PARAM_CHARS] for k, v in params.items()}


def _batches(items: list, size: int = 900):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def log_run(config: PipelineConfig, report: RunReport) -> str:
    """Logs the run and returns the MLflow run id. Only an explicit client is used: MLflow's fluent
    API keeps a process-wide active run and sets $MLFLOW_TRACKING_URI, which would send the next
    pipeline's run (another home) to this store."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(config))
    now = int(time.time() * 1000)
    tags = {
        "pipeline_run_id": report.run_id,
        "status": "succeeded" if report.succeeded else "failed",
        "blessed": str(report.blessed).lower() if report.blessed is not None else "n/a",
        "blessing_reason": report.blessing_reason[:5000],
        "pushed_version": report.pushed_path or "none",
        "pushed_this_run": str(report.pushed_now).lower(),
        "fully_cached": str(report.fully_cached).lower(),
        "mlmd_execution_ids": ",".join(f"{c.node}={c.execution_id}" for c in report.components),
        **({"error": report.error[:5000]} if report.error else {}),
    }
    experiment_id = _experiment_id(client, config)
    run = client.create_run(experiment_id, run_name=report.run_id or None)
    run_id = run.info.run_id
    try:
        metrics = [Metric(f"epoch_{name}", value, now, step)
                   for name, values in report.history.items() for step, value in enumerate(values, start=1)]
        metrics += [Metric(f"eval_{name}", value, now, 0) for name, value in report.metrics.get(OVERALL, {}).items()]
        for variant, entry in report.edge.get("variants", {}).items():
            metrics += [Metric(f"edge_{variant}_{key}", float(entry[key]), now, 0)
                        for key in ("size_bytes", "max_abs_diff", "metric_drop", "value") if entry.get(key) is not None]
            tags[f"edge_{variant}"] = "shipped" if entry.get("accepted") else f"left out: {entry.get('reason', '')}"[:5000]
        params = [Param(k, v) for k, v in _params(config, report).items()]
        for batch in _batches(params, 90):
            client.log_batch(run_id, params=batch)
        for batch in _batches(metrics):
            client.log_batch(run_id, metrics=batch)
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        _log_trials(client, report, experiment_id, run_id)
    finally:
        client.set_terminated(run_id)
    return run_id


def _log_trials(client, report: RunReport, experiment_id: str, parent_run_id: str) -> None:
    """Each tuning trial as a child run of the pipeline run: its hyperparameters and its score."""
    from mlflow.entities import Metric, Param, RunTag

    uri = report.artifact_uris.get("Tuner", {}).get("TunerResults")
    if not uri or not os.path.exists(os.path.join(uri, TUNER_RESULTS_FILE)):
        return
    with open(os.path.join(uri, TUNER_RESULTS_FILE)) as f:
        trials = json.load(f)
    now = int(time.time() * 1000)
    for rank, trial in enumerate(trials, start=1):
        child = client.create_run(experiment_id, run_name=f"trial {trial['trial_id']}",
                                  tags={"mlflow.parentRunId": parent_run_id})
        client.log_batch(
            child.info.run_id,
            params=[Param(k, str(v)) for k, v in trial.items() if k not in ("trial_id", "score")],
            metrics=[Metric("val_loss", float(trial["score"]), now, 0)],
            tags=[RunTag("trial_id", str(trial["trial_id"])), RunTag("rank", str(rank)),
                  RunTag("pipeline_run_id", report.run_id)])
        client.set_terminated(child.info.run_id)
