"""What one pipeline run did, read back from ML Metadata and the artifacts it points to."""
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from components.comparators import ACCEPTED_SPAN_TYPE, DRIFT_REPORT_FILE
from components.gate_metrics import EVAL_ROWS, EVAL_ROWS_USED, MIN_SLICE_ROWS, OVERALL
from core.config import (
    DRIFT_GATE_ID,
    EDGE_EXPORT_ID,
    PUSHER_ID,
    RESOLVER_IDS,
    PipelineConfig,
)
from serving.codec.comparable import why_not_comparable
from serving.codec.model_extras import SERVING_MODEL_DIR
from serving.edge_runtime import ARTIFACT_TYPE as EDGE_ARTIFACT_TYPE
from serving.edge_runtime import REPORT_FILE as EDGE_REPORT_FILE

RUN_CONTEXT = "pipeline_run"
NODE_CONTEXT = "node"
LEGACY_RUN_CONTEXT, LEGACY_NODE_CONTEXT = "run", "component_run"  # TFX's Airflow runner (legacy launcher)


@dataclass
class ComponentRun:
    node: str
    state: str  # COMPLETE, CACHED, FAILED, ...
    seconds: float
    execution_id: int
    started_ms: int = 0  # ML Metadata's create time of the execution (Unix ms)


SCALED_WINDOW_METRICS = {"mean_absolute_error": "MASE (window-scaled MAE)", "mean_squared_error": "window-scaled MSE"}


def candidates_shown(candidates: Optional[Mapping[str, Any]]) -> str:
    """A small table's dnn and its linear rival (model.json's ``candidates``), as the summary and the
    card name them ('' when the Trainer fit one model): 'dnn 0.6929, linear 0.7357 (auc on the eval
    split); kept: linear'."""
    c = candidates
    return (f"dnn {c['dnn']:.4f}, linear {c['linear']:.4f} ({c['metric']} on the eval split); kept: {c['chosen']}"
            if c else "")


@dataclass
class RunReport:
    pipeline: str
    run_id: str = ""
    components: List[ComponentRun] = field(default_factory=list)
    error: Optional[str] = None
    anomalies: Optional[str] = None  # formatted anomalies when the gate stopped the run
    metrics: Dict[str, Dict[str, float]] = field(default_factory=dict)  # slice -> metric -> value
    blessed: Optional[bool] = None
    blessing_reason: str = ""
    pushed_now: bool = False
    pushed_path: Optional[str] = None
    history: Dict[str, List[float]] = field(default_factory=dict)
    model_info: Dict = field(default_factory=dict)
    edge: Dict = field(default_factory=dict)  # EdgeExport's report: variants with parity results, or error
    artifact_uris: Dict[str, Dict[str, str]] = field(default_factory=dict)  # node -> artifact type -> uri
    input_properties: Dict[str, int] = field(default_factory=dict)  # span and version of the input examples
    training_spans: List[int] = field(default_factory=list)  # the spans Transform and the Trainer used
    drift: Dict = field(default_factory=dict)  # DriftGate's report when the span was accepted
    baseline: Dict = field(default_factory=dict)  # a scikit-learn baseline on the same split: model, metric, value
    baseline_skipped: str = ""  # why the last blessed model was not this run's baseline (serving.codec.comparable)
    teacher: Dict = field(default_factory=dict)  # distillation: teacher and student side by side
    holdout: Any = None  # a user's series: release.forecast_holdout.HoldoutComparison
    split_rows: Dict[str, int] = field(default_factory=dict)  # split -> rows, from StatisticsGen
    eval_rows: Dict[str, int] = field(default_factory=dict)  # the Evaluator's {"rows", "used"} (a sample if fewer)
    schema_features: Optional[int] = None  # features in the schema the run validated against
    anomalies_found: Dict[str, List[str]] = field(default_factory=dict)  # split -> features ExampleValidator named
    mlflow_run_id: Optional[str] = None
    model_version: Optional[int] = None  # the registry version of the pushed model
    tracking_error: Optional[str] = None
    log_path: Optional[str] = None  # the libraries' output of this run (`mlops run` without --verbose)
    after_steps: List[Tuple[str, float]] = field(default_factory=list)  # (name, seconds) of the steps after it
    card_path: Optional[str] = None  # the pushed model's card (assets.extra/model_card.html)
    card_error: Optional[str] = None

    def metric_label(self, name: str) -> str:
        """A metric's name as the summary shows it: a user's series is evaluated on windows scaled by
        their own seasonal naive error, so TFMA's mean_absolute_error there is a MASE, not an MAE in
        the series' units (the holdout lines give those)."""
        return SCALED_WINDOW_METRICS.get(name, name) if self.model_info.get("forecast") else name

    def slice_rows(self, slice_name: str) -> Optional[int]:
        """The eval rows TFMA counted on a slice (any output's count: every head sees the same rows)."""
        values = self.metrics.get(slice_name, {})
        count = next((v for k, v in values.items() if k == "example_count" or k.endswith("/example_count")), None)
        return None if count is None else int(count)

    @property
    def unjudged_slices(self) -> Dict[str, int]:
        """slice -> eval rows, for the slices too small to gate (shown, never judged)."""
        rows = {name: self.slice_rows(name) for name in self.metrics if name != OVERALL}
        return {name: count for name, count in sorted(rows.items()) if count is not None and count < MIN_SLICE_ROWS}

    @property
    def succeeded(self) -> bool:
        return self.error is None

    def state_of(self, node: str) -> Optional[str]:
        return next((c.state for c in self.components if c.node == node), None)

    @property
    def fully_cached(self) -> bool:
        work = [c for c in self.components if c.node not in RESOLVER_IDS]
        return bool(work) and all(c.state == "CACHED" for c in work)


def open_store(spec) -> mlmd.MetadataStore:
    """ML Metadata's store (core.metadata_store.MetadataStoreSpec), read-only where the store can be
    (reports never write lineage)."""
    return mlmd.MetadataStore(spec.connection_config(readonly=True))


def _latest_run_context(store: mlmd.MetadataStore, pipeline: str, since_ms: int):
    pipeline_ctx = store.get_context_by_type_and_name("pipeline", pipeline)
    if pipeline_ctx is None:
        return None
    runs = [c for c in store.get_contexts_by_type(RUN_CONTEXT) if c.create_time_since_epoch >= since_ms]
    runs = [c for c in runs if any(p.id == pipeline_ctx.id for p in store.get_parent_contexts_by_context(c.id))] \
        or runs
    runs += [c for c in store.get_contexts_by_type(LEGACY_RUN_CONTEXT)  # named "<pipeline>.<run id>"
             if c.create_time_since_epoch >= since_ms and c.name.startswith(f"{pipeline}.")]
    return max(runs, key=lambda c: c.create_time_since_epoch) if runs else None


_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


def _artifacts_of(store: mlmd.MetadataStore, execution_id: int, kinds=_OUTPUT_EVENTS) -> Dict[str, list]:
    """artifact type name -> the execution's artifacts of that type (its outputs, or events ``kinds``)."""
    events = store.get_events_by_execution_ids([execution_id])
    ids = [e.artifact_id for e in events if e.type in kinds]
    by_type: Dict[str, list] = {}
    for artifact in store.get_artifacts_by_id(ids):
        by_type.setdefault(store.get_artifact_types_by_id([artifact.type_id])[0].name, []).append(artifact)
    return by_type


def _custom(artifact, key: str):
    value = artifact.custom_properties.get(key)
    if value is None:
        return None
    return value.string_value or value.int_value


def collect(config: PipelineConfig, since_ms: int) -> RunReport:
    """The report of the newest run of ``config.name`` started at or after ``since_ms`` (a run
    whose id is not known here, such as an Airflow DAG run's)."""
    if not config.home.metadata.exists():
        return RunReport(pipeline=config.name)
    store = open_store(config.home.metadata)
    return _report(store, config, _latest_run_context(store, config.name, since_ms))


def collect_run(config: PipelineConfig, run_id: str) -> RunReport:
    """The report of the pipeline run ``run_id`` of ``config.name`` (empty until it has started)."""
    if not config.home.metadata.exists():
        return RunReport(pipeline=config.name, run_id=run_id)
    store = open_store(config.home.metadata)
    report = _report(store, config, store.get_context_by_type_and_name(RUN_CONTEXT, run_id))
    report.run_id = run_id
    return report


def _report(store: mlmd.MetadataStore, config: PipelineConfig, run_ctx) -> RunReport:
    """What the run context ``run_ctx`` (None: not recorded yet) holds: components, outputs, facts."""
    report = RunReport(pipeline=config.name)
    if run_ctx is None:
        return report
    report.run_id = run_ctx.name
    node_types = {t.id for t in store.get_context_types() if t.name in (NODE_CONTEXT, LEGACY_NODE_CONTEXT)}
    by_node = {}
    for execution in store.get_executions_by_context(run_ctx.id):
        node = next((c.name.rsplit(".", 1)[-1] for c in store.get_contexts_by_execution(execution.id)
                     if c.type_id in node_types), str(execution.id))
        seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000.0
        state = metadata_store_pb2.Execution.State.Name(execution.last_known_state)
        by_node[node] = ComponentRun(node, state, seconds, execution.id, execution.create_time_since_epoch)
    report.components = sorted(by_node.values(), key=lambda c: c.execution_id)
    outputs = {c.node: _artifacts_of(store, c.execution_id) for c in report.components
               if c.state in ("COMPLETE", "CACHED")}
    report.artifact_uris = {node: {kind: arts[0].uri for kind, arts in by_type.items() if arts}
                            for node, by_type in outputs.items()}
    # a forecaster's gate metric is the MAE of windows scaled by their own seasonal naive error
    gate_names = {config.task.gate_metric: SERIES_GATE_NAME} if config.series_table else {}
    _read_artifacts(report, outputs, by_node, gate_names)
    if "Evaluator" in by_node and outputs.get("Trainer", {}).get("Model"):
        report.baseline_skipped = _skipped_baseline(store, config.name, by_node["Evaluator"].execution_id,
                                                    outputs["Trainer"]["Model"][0])
    if "Transform" in outputs:
        inputs = _artifacts_of(store, by_node["Transform"].execution_id, (metadata_store_pb2.Event.INPUT,))
        report.training_spans = sorted(_custom(e, "span") for e in inputs.get("Examples", [])
                                       if _custom(e, "span") is not None)
    return report


def _skipped_baseline(store: mlmd.MetadataStore, pipeline: str, evaluator_id: int, candidate) -> str:
    """Why the Evaluator compared ``candidate`` with no earlier model although one was blessed ("" when
    it compared, or none was): the newest blessed one cannot be scored on this run's eval split."""
    if len(_artifacts_of(store, evaluator_id, (metadata_store_pb2.Event.INPUT,)).get("Model", [])) > 1:
        return ""  # the candidate and its baseline
    pipeline_ctx = store.get_context_by_type_and_name("pipeline", pipeline)
    if pipeline_ctx is None:
        return ""
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    artifacts = store.get_artifacts_by_context(pipeline_ctx.id)
    blessed = {_custom(a, "current_model_id") for a in artifacts
               if type_names.get(a.type_id) == "ModelBlessing" and _custom(a, "blessed") == 1}
    older = [a for a in artifacts if type_names.get(a.type_id) == "Model" and a.id < candidate.id and a.id in blessed]
    if not older:
        return ""
    last = max(older, key=lambda a: a.id)
    return why_not_comparable(os.path.join(last.uri, SERVING_MODEL_DIR), os.path.join(candidate.uri, SERVING_MODEL_DIR))


def _read_artifacts(report: RunReport, outputs: Dict[str, Dict[str, list]],
                    by_node: Dict[str, ComponentRun], gate_names: Mapping[str, str]) -> None:
    for node, by_type in outputs.items():
        for examples in by_type.get("Examples", []) if node.endswith("ExampleGen") else []:
            report.input_properties = {key: _custom(examples, key) for key in ("span", "version")
                                       if _custom(examples, key) is not None}
    for statistics in outputs.get("StatisticsGen", {}).get("ExampleStatistics", []):
        report.split_rows = read_split_rows(statistics.uri)
    for node in ("SchemaGen", "ImportSchemaGen"):
        for schema in outputs.get(node, {}).get("Schema", []):
            report.schema_features = count_schema_features(schema.uri)
    for anomalies in outputs.get("ExampleValidator", {}).get("ExampleAnomalies", []):
        report.anomalies_found = read_anomalies(anomalies.uri)
    for model_run in outputs.get("Trainer", {}).get("ModelRun", []):
        report.history = _read_json(os.path.join(model_run.uri, "history.json"))
        report.model_info = _read_json(os.path.join(model_run.uri, "model.json"))
    for evaluation in outputs.get("Evaluator", {}).get("ModelEvaluation", []):
        report.metrics = read_metrics(evaluation.uri)
        if _custom(evaluation, EVAL_ROWS) is not None:
            report.eval_rows = {"rows": _custom(evaluation, EVAL_ROWS), "used": _custom(evaluation, EVAL_ROWS_USED)}
        report.blessing_reason = read_validation(evaluation.uri, report.metrics, gate_names)
    for blessing in outputs.get("Evaluator", {}).get("ModelBlessing", []):
        report.blessed = _custom(blessing, "blessed") == 1
    for accepted in outputs.get(DRIFT_GATE_ID, {}).get(ACCEPTED_SPAN_TYPE, []):
        report.drift = _read_json(os.path.join(accepted.uri, DRIFT_REPORT_FILE))
    for edge in outputs.get(EDGE_EXPORT_ID, {}).get(EDGE_ARTIFACT_TYPE, []):
        report.edge = _read_json(os.path.join(edge.uri, EDGE_REPORT_FILE))
    for pushed in outputs.get(PUSHER_ID, {}).get("PushedModel", []):
        if _custom(pushed, "pushed") == 1:
            report.pushed_path = _custom(pushed, "pushed_destination")
            report.pushed_now = by_node[PUSHER_ID].state == "COMPLETE"


def _splits(uri: str, file_name: str) -> Dict[str, str]:
    """split -> path of ``file_name`` in the artifact's Split-<name>/ folders."""
    names = sorted(os.listdir(uri)) if os.path.isdir(uri) else []
    return {n[len("Split-"):]: os.path.join(uri, n, file_name) for n in names
            if n.startswith("Split-") and os.path.exists(os.path.join(uri, n, file_name))}


def read_split_rows(statistics_uri: str) -> Dict[str, int]:
    """split -> rows, as StatisticsGen counted them (no pass over the data)."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    rows = {}
    for split, path in _splits(statistics_uri, "FeatureStats.pb").items():
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        with open(path, "rb") as f:
            stats.ParseFromString(f.read())
        rows[split] = int(sum(d.num_examples for d in stats.datasets))
    return rows


def count_schema_features(schema_uri: str) -> Optional[int]:
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    path = os.path.join(schema_uri, "schema.pbtxt")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return len(text_format.Parse(f.read(), schema_pb2.Schema()).feature)


def read_anomalies(anomalies_uri: str) -> Dict[str, List[str]]:
    """split -> the features (or dataset-level keys) ExampleValidator found anomalous."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    found = {}
    for split, path in _splits(anomalies_uri, "SchemaDiff.pb").items():
        anomalies = anomalies_pb2.Anomalies()
        with open(path, "rb") as f:
            anomalies.ParseFromString(f.read())
        found[split] = sorted(anomalies.anomaly_info) + (["(dataset)"] if anomalies.HasField("dataset_anomaly_info")
                                                         else [])
    return found


def _read_json(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _slice_name(slice_key) -> str:
    parts = []
    for single in slice_key.single_slice_keys:
        kind = single.WhichOneof("kind")
        value = getattr(single, kind) if kind else ""
        parts.append(f"{single.column}={value.decode() if isinstance(value, bytes) else value}")
    return ",".join(parts) or OVERALL


def read_metrics(evaluation_uri: str) -> Dict[str, Dict[str, float]]:
    """slice -> {metric: value} for the candidate; a change vs the baseline is ``<metric>_change``."""
    import tensorflow_model_analysis as tfma

    out: Dict[str, Dict[str, float]] = {}
    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        values = out.setdefault(_slice_name(metrics_for_slice.slice_key), {})
        for item in metrics_for_slice.metric_keys_and_values:
            if item.key.model_name == "baseline" or not item.value.HasField("double_value"):
                continue
            name = (f"{item.key.output_name}/" if item.key.output_name else "") + item.key.name \
                + ("_change" if item.key.is_diff else "")
            if item.key.sub_key.HasField("class_id") or item.key.sub_key.HasField("top_k"):
                continue
            values[name] = item.value.double_value.value
    for values in out.values():
        _drop_single_class_auc(values)
    return out


def _drop_single_class_auc(values: Dict[str, float]) -> None:
    """A slice whose eval rows hold one class has no AUC (TFMA reports 0): left out, not scored."""
    for name in [n for n in values if n == "mean_label" or n.endswith("/mean_label")]:
        if values[name] in (0.0, 1.0):
            prefix = name[: -len("mean_label")]
            for metric in ("auc", "auc_change"):
                values.pop(prefix + metric, None)


SERIES_GATE_NAME = "MASE of the eval windows (the MAE of windows scaled by their own seasonal naive error)"


def read_validation(evaluation_uri: str, metrics: Optional[Dict[str, Dict[str, float]]] = None,
                    names: Mapping[str, str] = {}) -> str:
    """Why the Evaluator did or did not bless: each failing threshold with its slice and row count
    (``names``: what to call a metric, where its TFMA name would mislead)."""
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.proto import config_pb2

    result = tfma.load_validation_result(evaluation_uri)
    if result.validation_ok:
        return "passed every threshold"
    failures = []
    for per_slice in result.metric_validations_per_slice:
        slice_name = _slice_name(per_slice.slice_key)
        rows = (metrics or {}).get(slice_name, {}).get("example_count")
        where = f"{slice_name}{f' ({rows:.0f} rows)' if rows is not None else ''}: "
        for failure in per_slice.failures:
            key = failure.metric_key
            name = (f"{key.output_name}/" if key.output_name else "") + names.get(key.name, key.name) \
                + (" change vs baseline" if key.is_diff else "")
            value = failure.metric_value.double_value.value
            threshold = failure.metric_threshold
            limit = []
            if threshold.HasField("value_threshold"):
                bound = threshold.value_threshold
                if bound.HasField("lower_bound"):
                    limit.append(f">= {bound.lower_bound.value:g}")
                if bound.HasField("upper_bound"):
                    limit.append(f"<= {bound.upper_bound.value:g}")
            else:
                change = threshold.change_threshold
                higher = change.direction == config_pb2.MetricDirection.HIGHER_IS_BETTER
                if change.HasField("absolute"):
                    limit.append(f"{'>=' if higher else '<='} {change.absolute.value:g}")
                if change.HasField("relative"):
                    limit.append(f"{'>=' if higher else '<='} {change.relative.value:g} (relative)")
            if failure.message.strip().startswith("Metric not found"):
                failures.append(f"{where}{name} not computed (its threshold: {' and '.join(limit)})")
            else:
                failures.append(f"{where}{name} = {value:.4f}, needs {' and '.join(limit)}")
    if result.missing_thresholds:
        failures.append("a metric with a threshold was not computed")
    return "; ".join(failures) or "validation failed"
