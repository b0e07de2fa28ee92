"""Training/serving skew (`mlops skew NAME`): the rows a serving endpoint logged for a version
against the training split that version was trained on, feature by feature, with TFDV's skew
comparators: L-infinity distance for categorical features, approximate Jensen-Shannon divergence
for numeric ones. The training data is found by lineage in ML Metadata: the PushedModel at the
version's directory <- its Pusher execution <- the Examples it was given."""
from pathlib import Path
from typing import List, Optional, Sequence

from components.comparators import (
    DEFAULT_CATEGORICAL_THRESHOLD,
    DEFAULT_NUMERIC_THRESHOLD,
    SKEW,
    FeatureDistance,
    distances,
    format_distances,
    set_comparators,
)
from core.config import LOCAL_BEAM_ARGS
from core.home import Home


class SkewError(Exception):
    pass


def _store(home: Home):
    from core.run_report import open_store

    if not home.metadata.exists():
        raise SkewError(f"{home.metadata}: no ML Metadata store (run a pipeline first)")
    return open_store(home.metadata)


def training_split(home: Home, version_dir: Path, split: str = "train") -> str:
    """The directory of the training split the model at ``version_dir`` was pushed with."""
    from ml_metadata.proto import metadata_store_pb2

    store = _store(home)
    pushed = [a for a in store.get_artifacts_by_type("PushedModel")
              if a.custom_properties.get("pushed_destination", None) is not None
              and a.custom_properties["pushed_destination"].string_value == str(version_dir)]
    if not pushed:
        raise SkewError(f"{version_dir}: no pushed model at this path in {home.metadata}")
    events = store.get_events_by_artifact_ids([pushed[-1].id])
    executions = [e.execution_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
    inputs = [e.artifact_id for e in store.get_events_by_execution_ids(executions)
              if e.type == metadata_store_pb2.Event.INPUT]
    examples_type = store.get_artifact_type("Examples").id
    for artifact in store.get_artifacts_by_id(inputs):
        if artifact.type_id == examples_type:
            return str(Path(artifact.uri) / f"Split-{split}")
    raise SkewError(f"{version_dir}: its Pusher execution has no input Examples")


def _statistics(pattern: str, beam_args: Sequence[str]):
    """TFDV's statistics of the TFRecords at ``pattern``, on the Beam runner ``beam_args`` name."""
    import tensorflow_data_validation as tfdv
    from apache_beam.options.pipeline_options import PipelineOptions

    from core.beam_runners import beam_temp_dir

    with beam_temp_dir():
        return tfdv.generate_statistics_from_tfrecord(data_location=pattern,
                                                      pipeline_options=PipelineOptions(list(beam_args)))


def compare(training_pattern: str, serving_pattern: str, categorical_threshold: float = DEFAULT_CATEGORICAL_THRESHOLD,
            numeric_threshold: float = DEFAULT_NUMERIC_THRESHOLD,
            beam_args: Sequence[str] = LOCAL_BEAM_ARGS) -> List[FeatureDistance]:
    """One row per feature present in the serving rows (the label never is)."""
    import tensorflow_data_validation as tfdv

    training, serving = _statistics(training_pattern, beam_args), _statistics(serving_pattern, beam_args)
    schema = tfdv.infer_schema(training)
    served = {f.path.step[0] for f in serving.datasets[0].features}
    set_comparators(schema, SKEW, categorical_threshold, numeric_threshold, features=served)
    return distances(tfdv.validate_statistics(training, schema, serving_statistics=serving), schema, SKEW)


def skew_for_version(home: Home, name: str, version: Optional[int] = None, request_log_dir: Optional[Path] = None,
                     beam_args: Sequence[str] = LOCAL_BEAM_ARGS, **thresholds) -> tuple:
    """(version, rows logged, per-feature skew) for ``version`` (default: the newest with logs)."""
    logs = Path(request_log_dir or home.request_logs).resolve() / name  # workers elsewhere read it too
    versions = sorted(int(p.name) for p in logs.iterdir() if p.name.isdigit() and any(p.glob("*.tfrecord"))) \
        if logs.is_dir() else []
    if not versions:
        raise SkewError(f"{logs}: no request logs (serve with `mlops serve --log-requests RATE`)")
    version = version or versions[-1]
    if version not in versions:
        raise SkewError(f"{logs}: no request logs for version {version} (logged: {', '.join(map(str, versions))})")
    training = training_split(home, home.model_base_dir(name) / str(version))
    serving = str(logs / str(version) / "*.tfrecord")
    rows = _count(serving)
    return version, rows, compare(f"{training}/*", serving, beam_args=beam_args, **thresholds)


def _count(pattern: str) -> int:
    import glob

    import tensorflow as tf

    return sum(1 for _ in tf.data.TFRecordDataset(sorted(glob.glob(pattern))))


def format_skew(name: str, version: int, rows: int, skews: List[FeatureDistance]) -> str:
    return "\n".join([f"skew of '{name}' version {version}: {rows} logged request rows vs its training split",
                      *format_distances(skews, "SKEWED")])
