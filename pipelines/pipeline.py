"""create_pipeline(): the TFX DAG, pure (no I/O), from an injected PipelineConfig.

CsvExampleGen (pyarrow) -> StatisticsGen -> SchemaGen | ImportSchemaGen -> ExampleValidator -> AnomaliesGate
-> [spans: DriftGate vs the previous accepted span -> window of accepted spans] -> Transform -> [Tuner]
[warm-start Resolver] -> Trainer -> baseline Resolver -> Evaluator
-> [EdgeExport: TF Lite variants, parity-gated] -> Pusher (when blessed; our ServingPusher: atomic
version dirs, warmup records, the accepted TF Lite variants, models.config).
Components are imported directly, not through ``tfx.v1`` (which also imports Vertex AI, ~15 s).
"""
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

from tfx.components import (
    ExampleValidator,
    ImportExampleGen,
    SchemaGen,
    StatisticsGen,
    Trainer,
    Transform,
    Tuner,
)
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.base import executor_spec
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration import pipeline
from tfx.proto import example_gen_pb2, range_config_pb2, trainer_pb2
from tfx.types import Channel, standard_artifacts

from components import drift
from components import resolver as baseline
from components.csv_examples import csv_example_gen
from components.edge_export import EdgeExport
from components.evaluation import Evaluator, eval_config
from components.pusher import ServingPusher
from components.series import series_example_gen
from components.validation import AnomaliesGate
from core.config import (
    BASELINE_RESOLVER_ID,
    DRIFT_GATE_ID,
    EDGE_EXPORT_ID,
    PREVIOUS_SPAN_RESOLVER_ID,
    PUSHER_ID,
    TRAIN_EVAL_BUCKETS,
    WARM_START_RESOLVER_ID,
    WINDOW_RESOLVER_ID,
    Locations,
    PipelineConfig,
)
from serving.codec.images import FILE_FEATURE

PREPROCESSING_FN = "components.transform.preprocessing_fn"
RUN_FN = "components.trainer.run_fn"
TUNER_FN = "components.tuning.tuner_fn"


def _example_gen(config: PipelineConfig, where: Locations):
    """CsvExampleGen's records for CSV (built with pyarrow: components/csv_examples.py),
    ImportExampleGen for TFRecords of tf.Example (a 3:1 hash split; images
    by their file path, so the split holds when files are added), or windows of a time series split
    by time."""
    if config.input_format == "series":
        return series_example_gen(where.data, **config.series)
    train_buckets, eval_buckets = TRAIN_EVAL_BUCKETS
    example_gen = ImportExampleGen if config.input_format == "tfrecord" else csv_example_gen
    one_span = None  # with a {SPAN} pattern, ExampleGen takes the newest span unless told which
    if config.span is not None:
        one_span = range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(
            start_span_number=config.span, end_span_number=config.span))
    split_config = example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=train_buckets),
        example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=eval_buckets)])
    if config.images:  # a oneof: set only when used (an empty name is a feature named "")
        split_config.partition_feature_name = FILE_FEATURE
    return example_gen(
        input_base=where.input_base,
        range_config=one_span,
        input_config=example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name="data", pattern=where.input_pattern)]),
        output_config=example_gen_pb2.Output(split_config=split_config),
    )


def blessed_baseline_before_candidate(candidate: Channel) -> Resolver:
    """The newest blessed model older than this run's candidate (a cached rerun stays cached)."""
    return Resolver(
        strategy_class=baseline.BlessedBaselineStrategy,
        **{baseline.CANDIDATE: candidate,
           baseline.MODEL: Channel(type=standard_artifacts.Model),
           baseline.MODEL_BLESSING: Channel(type=standard_artifacts.ModelBlessing)},
    ).with_id(BASELINE_RESOLVER_ID)


def latest_blessed_baseline(candidate: Channel) -> Resolver:
    """TFX's own strategy, the newest blessed model: Kubeflow v2 compiles only TFX's strategies
    (and caches by itself)."""
    return Resolver(strategy_class=LatestBlessedModelStrategy, model=Channel(type=standard_artifacts.Model),
                    model_blessing=Channel(type=standard_artifacts.ModelBlessing)).with_id(BASELINE_RESOLVER_ID)


def _span_gate_and_window(config: PipelineConfig, example_gen, statistics_gen, schema: Channel,
                          anomalies_gate) -> list:
    """[previous accepted span's statistics, DriftGate, window of accepted spans]: a new span is
    compared with the last one accepted, then trained on with the spans accepted before it."""
    previous = Resolver(
        strategy_class=drift.PreviousAcceptedStatistics,
        **{drift.CURRENT: example_gen.outputs["examples"],
           drift.ACCEPTED: Channel(type=drift.AcceptedSpan, producer_component_id=DRIFT_GATE_ID),
           drift.STATISTICS: Channel(type=standard_artifacts.ExampleStatistics,
                                     producer_component_id=statistics_gen.id)},
    ).with_id(PREVIOUS_SPAN_RESOLVER_ID)
    gate = drift.DriftGate(statistics=statistics_gen.outputs["statistics"], examples=example_gen.outputs["examples"],
                           schema=schema, previous_statistics=previous.outputs[drift.STATISTICS],
                           previous_accepted=previous.outputs[drift.ACCEPTED]).with_id(DRIFT_GATE_ID)
    gate.add_upstream_node(anomalies_gate)  # a span that broke the schema is never accepted
    window = Resolver(
        strategy_class=drift.AcceptedSpanWindow, config={"num_spans": config.window_spans},
        **{drift.CURRENT: gate.outputs["accepted"],
           drift.ACCEPTED: Channel(type=drift.AcceptedSpan, producer_component_id=DRIFT_GATE_ID),
           drift.EXAMPLES: Channel(type=standard_artifacts.Examples, producer_component_id=example_gen.id)},
    ).with_id(WINDOW_RESOLVER_ID)
    return [previous, gate, window]


@dataclass
class DataStages:
    """ExampleGen through the anomalies gate (and, with spans, the drift gate and window): what
    Transform and the Evaluator read."""
    nodes: List[Any]
    examples: Channel  # every split, as ExampleGen wrote them (the Evaluator's and the edge's input)
    training_examples: Channel  # what Transform reads: the examples, or the window of accepted spans
    schema: Channel
    gate: Any  # the last gate before Transform


def _data_stages(config: PipelineConfig, where: Locations) -> DataStages:
    example_gen = _example_gen(config, where)
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    if config.schema_path:
        schema_gen = ImportSchemaGen(schema_file=str(config.schema_path))
    else:
        schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    schema = schema_gen.outputs["schema"]
    example_validator = ExampleValidator(statistics=statistics_gen.outputs["statistics"], schema=schema)
    anomalies_gate = AnomaliesGate(anomalies=example_validator.outputs["anomalies"])
    nodes = [example_gen, statistics_gen, schema_gen, example_validator, anomalies_gate]
    examples = example_gen.outputs["examples"]
    if not config.span_pattern:
        return DataStages(nodes, examples, examples, schema, anomalies_gate)
    previous, drift_gate, window = _span_gate_and_window(config, example_gen, statistics_gen, schema, anomalies_gate)
    return DataStages([*nodes, previous, drift_gate, window], examples, window.outputs[drift.EXAMPLES], schema,
                      drift_gate)


def _transform(config: PipelineConfig, data: DataStages) -> Transform:
    transform = Transform(
        examples=data.training_examples, schema=data.schema, preprocessing_fn=PREPROCESSING_FN,
        custom_config=config.transform_spec().to_dict(),
        disable_analyzer_cache=True,  # no run reads it back (no analyzer_cache input); writing it cost 40% of Transform
        disable_statistics=True,  # its pre/post-transform TFDV passes feed nothing here; StatisticsGen has the data's
    )
    transform.add_upstream_node(data.gate)
    return transform


def _training_stages(config: PipelineConfig, where: Locations, transform: Transform,
                     schema: Channel) -> List[Any]:
    """[Tuner], [warm-start resolver], Trainer: the Trainer last."""
    training_inputs = {"examples": transform.outputs["transformed_examples"],
                       "transform_graph": transform.outputs["transform_graph"], "schema": schema}
    nodes: List[Any] = []
    # a user's series stops early (and tunes) on the windows before its holdout, never on the holdout
    selection_split = "valid" if config.series.get("validation") else "eval"
    if config.tuner:
        tuner = Tuner(tuner_fn=TUNER_FN, train_args=trainer_pb2.TrainArgs(splits=["train"]),
                      eval_args=trainer_pb2.EvalArgs(splits=[selection_split]),
                      custom_config=config.tune_spec().to_dict(),
                      **training_inputs)
        training_inputs["hyperparameters"] = tuner.outputs["best_hyperparameters"]
        nodes.append(tuner)
    if config.warm_start:
        warm_start_resolver = Resolver(
            strategy_class=LatestBlessedModelStrategy,
            model=Channel(type=standard_artifacts.Model),
            model_blessing=Channel(type=standard_artifacts.ModelBlessing),
        ).with_id(WARM_START_RESOLVER_ID)
        training_inputs["base_model"] = warm_start_resolver.outputs["model"]
        nodes.append(warm_start_resolver)
    if selection_split != "eval":
        training_inputs["eval_args"] = trainer_pb2.EvalArgs(splits=[selection_split])
    custom_config = config.train_spec(where.training_backups).to_dict()
    if config.vertex_training:
        return [*nodes, _vertex_trainer(config.vertex_training, custom_config, training_inputs)]
    if config.train_workers > 1:  # the executor starts the workers (components.train_workers)
        from components.train_workers import MultiWorkerTrainerExecutor  # TFX's trainer executor: Beam's GCP imports

        training_inputs["custom_executor_spec"] = executor_spec.ExecutorClassSpec(MultiWorkerTrainerExecutor)
    trainer = Trainer(run_fn=RUN_FN, custom_config=custom_config, **training_inputs)
    return [*nodes, trainer]


def _vertex_trainer(vertex, custom_config: dict, training_inputs: dict):
    """TFX's Vertex AI Trainer: a custom job of a chief and ``replicas - 1`` workers (worker pool
    specs), each running the same run_fn under the TF_CONFIG Vertex sets (MultiWorkerMirroredStrategy)."""
    from tfx.extensions.google_cloud_ai_platform import constants
    from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor
    from tfx.extensions.google_cloud_ai_platform.trainer.component import Trainer as VertexTrainer

    pool = {"machine_spec": {"machine_type": vertex.machine}, "container_spec": {"image_uri": vertex.image}}
    pools = [{**pool, "replica_count": 1}] + ([{**pool, "replica_count": vertex.replicas - 1}]
                                               if vertex.replicas > 1 else [])
    custom_config = {**custom_config, constants.ENABLE_VERTEX_KEY: True, constants.VERTEX_REGION_KEY: vertex.region,
                     vertex_executor.TRAINING_ARGS_KEY: {"project": vertex.project, "worker_pool_specs": pools}}
    return VertexTrainer(run_fn=RUN_FN, custom_config=custom_config, **training_inputs)


def _release_stages(config: PipelineConfig, where: Locations, examples: Channel, transform: Transform,
                    model: Channel, baseline_resolver: Callable[[Channel], Resolver]) -> List[Any]:
    """Baseline resolver, Evaluator, [EdgeExport], Pusher."""
    baseline_node = baseline_resolver(model)
    evaluator = Evaluator(
        examples=examples, model=model, baseline_model=baseline_node.outputs[baseline.MODEL],
        eval_config=eval_config(config.targets, config.task_name, config.gate_thresholds,
                                config.max_metric_drop, config.slice_features),
    )
    edge = [EdgeExport(model=model, model_blessing=evaluator.outputs["blessing"],
                       transform_graph=transform.outputs["transform_graph"], examples=examples,
                       task=config.task_name, targets=config.targets).with_id(EDGE_EXPORT_ID)] if config.edge else []
    pusher = ServingPusher(
        model=model, model_blessing=evaluator.outputs["blessing"], examples=examples,
        base_directory=where.serving_base, model_name=config.name,
        edge_model=edge[0].outputs["edge_model"] if edge else None,
    ).with_id(PUSHER_ID)
    return [baseline_node, evaluator, *edge, pusher]


def create_pipeline(config: PipelineConfig, locations: Optional[Locations] = None,
                    baseline_resolver: Callable[[Channel], Resolver] = blessed_baseline_before_candidate
                    ) -> pipeline.Pipeline:
    """The DAG for ``config``; paths from ``locations`` (default: the local home)."""
    where = locations or Locations.local(config)
    data = _data_stages(config, where)
    transform = _transform(config, data)
    training = _training_stages(config, where, transform, data.schema)
    release = _release_stages(config, where, data.examples, transform, training[-1].outputs["model"],
                              baseline_resolver)
    return pipeline.Pipeline(
        pipeline_name=config.name,
        pipeline_root=where.pipeline_root,
        components=[*data.nodes, transform, *training, *release],
        enable_cache=config.enable_cache,
        metadata_connection_config=where.metadata.connection_config() if where.metadata else None,
        beam_pipeline_args=list(config.beam_args),
    )
