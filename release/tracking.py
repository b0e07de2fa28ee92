"""MLflow tracking of a pipeline run: one MLflow run per pipeline run, experiment = pipeline name.

Logged after the pipeline finishes (not inside the Trainer: that cost 17-23 s of a 50 s Trainer),
from what the run left in ML Metadata: config, hyperparameters and the family's meta-parameters
as params; data facts; per-epoch metrics with the epoch as step; TFMA metrics overall and per slice;
the schema, TFDV statistics, plots, lineage, the model (as an MLflow pyfunc wrapping the
SavedModel: ``mlflow.tensorflow`` cannot save the TFT layer) and its TF Lite files as artifacts; a
newly pushed, blessed model is registered as the ``challenger``. The store is the home's SQLite
unless ``--tracking-uri`` / ``$MLFLOW_TRACKING_URI`` names another (e.g. an ``mlflow server``).
"""
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from components.gate_metrics import EVAL_ROWS, EVAL_ROWS_USED, OVERALL
from core.config import EDGE_EXPORT_ID, PipelineConfig
from core.run_report import RunReport
from release import mlflow_registry
from release.run_files import DataFacts, examples_uri
from serving.codec.model_extras import SERVING_MODEL_DIR
from serving.edge_runtime import ARTIFACT_TYPE as EDGE_ARTIFACT_TYPE

MAX_PARAM_CHARS = 6000
TUNER_RESULTS_FILE = "tuner_results.json"  # written by TFX's Tuner: one row per completed trial
TRAINER_MODEL_TAG = "trainer_model"  # the Trainer's SavedModel dir of the run
MODEL_LOGGED_TAG = "model_logged"  # this run holds the model (pyfunc) and its TF Lite files
MODEL_LOGGED_IN_TAG = "model_logged_in"  # a cached rerun: the run that logged the same model
FILES_LOGGED_IN_TAG = "files_logged_in"  # a fully cached rerun: the run that holds the same files


def _experiment_id(client, config: PipelineConfig) -> str:
    experiment = client.get_experiment_by_name(config.name)
    if experiment is not None:
        return experiment.experiment_id
    if mlflow_registry.is_remote(config.mlflow_uri):  # the server decides (and proxies) where artifacts go
        return client.create_experiment(config.name)
    location = (config.home.mlflow_artifacts / config.name).as_uri()
    return client.create_experiment(config.name, artifact_location=location)


def _params(config: PipelineConfig, report: RunReport, facts: DataFacts) -> Dict[str, str]:
    from components.models.families import FAMILIES

    params = {k: str(v) for k, v in config.as_params().items()}
    meta = set(FAMILIES[config.family].defaults) if config.family in FAMILIES else set()
    for key, value in report.model_info.get("hparams", dict(config.hparams)).items():
        params[f"{'meta' if key in meta else 'hparam'}.{key}"] = str(value)
    for key in ("parameters", "epochs_run", "best_epoch", "replicas_in_sync"):
        if key in report.model_info:
            params[f"model.{key}"] = str(report.model_info[key])
    for key in ("inputs", "head", "candidates", "forecast"):
        if key in report.model_info:
            params[f"model.{key}"] = json.dumps(report.model_info[key], sort_keys=True)
    params.update(facts.params)
    return {k: v[:MAX_PARAM_CHARS] for k, v in params.items()}


def metric_key(*parts: str) -> str:
    """An MLflow metric name from slice and metric names (MLflow refuses '=' and ',')."""
    return "/".join(parts).replace("=", ":").replace(",", ";")


def _metrics(report: RunReport, facts: DataFacts, now: int) -> List:
    from mlflow.entities import Metric

    metrics = [Metric(f"epoch_{name}", value, now, step)
               for name, values in report.history.items() for step, value in enumerate(values, start=1)]
    for slice_name, values in report.metrics.items():
        prefix = "eval" if slice_name == OVERALL else metric_key("eval", slice_name)
        metrics += [Metric(f"{prefix}_{name}" if slice_name == OVERALL else metric_key(prefix, name), value, now, 0)
                    for name, value in values.items()]
    metrics += [Metric(k, v, now, 0) for k, v in facts.metrics.items()]
    if report.baseline.get("value") is not None:
        metrics.append(Metric(f"eval_baseline_{report.baseline['metric']}", report.baseline["value"], now, 0))
    holdout = report.holdout  # a user's series: MAE, RMSE, sMAPE, MASE in its units, beside the baselines
    if holdout is not None:
        metrics += [Metric(f"holdout_{who}_{key}", float(value), now, 0)
                    for who, scores in (("model", holdout.model), ("seasonal_naive", holdout.seasonal_naive),
                                        ("ets", holdout.ets)) if scores is not None
                    for key, value in vars(scores).items()]
    for variant, entry in report.edge.get("variants", {}).items():
        metrics += [Metric(f"edge_{variant}_{key}", float(entry[key]), now, 0)
                    for key in ("size_bytes", "max_abs_diff", "metric_drop", "value") if entry.get(key) is not None]
    for role in ("teacher", "student"):  # distillation: both side by side
        metrics += [Metric(f"distill_{role}_{key}", float(value), now, 0)
                    for key, value in report.teacher.get(role, {}).items() if isinstance(value, (int, float))]
    for key, value in report.model_info.get("transfer", {}).items():  # transfer learning's two phases
        if isinstance(value, (int, float)):
            metrics.append(Metric(f"transfer_{key}", float(value), now, 0))
    return metrics


def run_tags(report: RunReport) -> Dict[str, str]:
    """What a run's MLflow tags say of it (`mlops status` reads them; an untracked run keeps them beside its
    log)."""
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
    model_dir = trainer_model(report)
    if model_dir:
        tags[TRAINER_MODEL_TAG] = model_dir
    if report.eval_rows:
        tags[EVAL_ROWS], tags[EVAL_ROWS_USED] = str(report.eval_rows["rows"]), str(report.eval_rows["used"])
    for variant, entry in report.edge.get("variants", {}).items():
        tags[f"edge_{variant}"] = "shipped" if entry.get("accepted") else f"left out: {entry.get('reason', '')}"[:5000]
    return tags


def trainer_model(report: RunReport) -> Optional[str]:
    uri = report.artifact_uris.get("Trainer", {}).get("Model")
    return os.path.join(uri, SERVING_MODEL_DIR) if uri and os.path.isdir(os.path.join(uri, SERVING_MODEL_DIR)) else None


def _run_holding(client, experiment_id: str, model_dir: str) -> Optional[str]:
    """The run that logged this Trainer output's model (and the files of the run that made it)."""
    earlier = client.search_runs([experiment_id], f"tags.{TRAINER_MODEL_TAG} = '{model_dir}' "
                                 f"and tags.{MODEL_LOGGED_TAG} = 'true'", max_results=1)
    return earlier[0].info.run_id if earlier else None


def _earlier_run_with_files(client, experiment_id: str, report: RunReport) -> Optional[str]:
    """For a fully cached rerun, the run that holds the same statistics, plots and model."""
    model_dir = trainer_model(report)
    return _run_holding(client, experiment_id, model_dir) if report.fully_cached and model_dir else None


def _model_run(client, experiment_id: str, run_id: str, report: RunReport) -> Optional[str]:
    """The MLflow run holding this run's model: this one after logging it, or the run that logged
    the same Trainer output before (a cached rerun does not copy the model again)."""
    from serving.pyfunc import save_pyfunc

    model_dir = trainer_model(report)
    if model_dir is None:
        return None
    earlier = _run_holding(client, experiment_id, model_dir)
    if earlier:
        client.set_tag(run_id, MODEL_LOGGED_IN_TAG, earlier)
        return earlier
    artifact_path = mlflow_registry.MODEL_ARTIFACT_PATH
    with tempfile.TemporaryDirectory() as tmp:
        save_pyfunc(Path(model_dir), Path(tmp) / artifact_path)
        client.log_artifacts(run_id, str(Path(tmp) / artifact_path), artifact_path)
    tflite = _tflite_dir(report)
    if tflite:
        client.log_artifacts(run_id, tflite, "tflite")
    client.set_tag(run_id, MODEL_LOGGED_TAG, "true")
    return run_id


def _tflite_dir(report: RunReport) -> Optional[str]:
    """The shipped TF Lite variants with their sidecar (else EdgeExport's output)."""
    if report.pushed_path and os.path.isdir(os.path.join(report.pushed_path, "tflite")):
        return os.path.join(report.pushed_path, "tflite")
    uri = report.artifact_uris.get(EDGE_EXPORT_ID, {}).get(EDGE_ARTIFACT_TYPE)
    return uri if uri and os.path.isdir(uri) else None


def _register(client, config: PipelineConfig, report: RunReport, model_run_id: str) -> Optional[int]:
    """Each blessed, pushed model becomes a version of ``<name>`` with the alias ``challenger``;
    a pushed model registered before (a cached rerun) is left as it is."""
    if not (report.pushed_path and report.blessed and model_run_id):
        return None
    source = f"{client.get_run(model_run_id).info.artifact_uri}/{mlflow_registry.MODEL_ARTIFACT_PATH}"
    examples = examples_uri(report)
    tags = {
        mlflow_registry.SERVING_VERSION_TAG: Path(report.pushed_path).name,
        mlflow_registry.SERVING_PATH_TAG: report.pushed_path,
        mlflow_registry.PIPELINE_RUN_TAG: report.run_id,
        mlflow_registry.TASK_TAG: config.task_name,
        mlflow_registry.TARGETS_TAG: json.dumps([list(t) for t in config.targets]),
        mlflow_registry.GATES_TAG: json.dumps(dict(config.gate_thresholds)),
        mlflow_registry.SLICES_TAG: json.dumps(list(config.slice_features)),
        "family": config.family,
        **({mlflow_registry.EVAL_EXAMPLES_TAG: os.path.join(examples, "Split-eval")} if examples else {}),
    }
    version = mlflow_registry.register_pushed(client, config.name, source, model_run_id, tags)
    return int(version.version)


def _batches(items: list, size: int = 900):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def run_name(config: PipelineConfig, report: RunReport) -> str:
    """What the run is, not when (the pipeline run id is a tag): ``<name> <family> span N``, plus the
    pretrained base or the teacher when there is one."""
    parts = [config.name, config.family]
    if config.pretrained:
        parts.append(f"from {config.pretrained['source']}")
    if config.distill_from:
        parts.append(f"student of {config.distill_from['source']}")
    if "span" in report.input_properties:
        parts.append(f"span {report.input_properties['span']}")
    return " ".join(parts)


def log_run(config: PipelineConfig, report: RunReport) -> str:
    """Logs the run (params, metrics, tags, files, the model), registers a newly pushed model, and
    returns the MLflow run id (``report.model_version`` gets the registry version)."""
    from mlflow.entities import Param, RunTag

    from release.run_files import write_run_files

    client = mlflow_registry.client_for(config.mlflow_uri)
    now = int(time.time() * 1000)
    experiment_id = _experiment_id(client, config)
    run = client.create_run(experiment_id, run_name=run_name(config, report))
    run_id = run.info.run_id
    status = "FAILED"
    try:
        earlier = _earlier_run_with_files(client, experiment_id, report)
        with tempfile.TemporaryDirectory() as tmp:
            facts = write_run_files(config, report, Path(tmp), files=earlier is None)
            if earlier is None:
                client.log_artifacts(run_id, tmp)
            else:  # a fully cached rerun: same statistics, plots, model; not copied again
                client.set_tag(run_id, FILES_LOGGED_IN_TAG, earlier)
        params = [Param(k, v) for k, v in _params(config, report, facts).items()]
        for batch in _batches(params, 90):
            client.log_batch(run_id, params=batch)
        for batch in _batches(_metrics(report, facts, now)):
            client.log_batch(run_id, metrics=batch)
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in run_tags(report).items()])
        _log_trials(client, report, experiment_id, run_id)
        report.model_version = _register(client, config, report, _model_run(client, experiment_id, run_id, report))
        if report.model_version:
            client.set_tag(run_id, "registered_version", str(report.model_version))
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status=status)
    return run_id


def log_card(config: PipelineConfig, run_id: str, card_html: Path) -> None:
    """The model card (HTML and JSON) as the run's ``model_card/`` artifacts."""
    client = mlflow_registry.client_for(config.mlflow_uri)
    for path in sorted(card_html.parent.glob("model_card.*")):
        client.log_artifact(run_id, str(path), "model_card")
    client.set_tag(run_id, "model_card", f"model_card/{card_html.name}")


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
