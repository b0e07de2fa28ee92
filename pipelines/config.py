"""PipelineConfig: everything one pipeline run depends on, built by the CLI and injected into
``create_pipeline`` (nothing is read from globals or the environment at import)."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from components.tasks import TaskSpec, get_task
from pipelines.home import Home
from pipelines.preflight import DataProfile

# DirectRunner in one process: 1.5-2x faster than multi_processing on small data (each worker
# would import TensorFlow again).
LOCAL_BEAM_ARGS: Tuple[str, ...] = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
DEFAULT_MIN_AUC = 0.7
DEFAULT_MAX_METRIC_DROP = 0.01
TRAIN_EVAL_BUCKETS = (3, 1)  # hash split of the input: 75% train, 25% eval
BASELINE_RESOLVER_ID = "baseline_resolver"  # resolves on every run; never cached


@dataclass(frozen=True)
class PipelineConfig:
    name: str
    data_path: Path
    label: str
    task_name: str
    home: Home
    family: str = "dnn"
    hparams: Mapping[str, Any] = field(default_factory=dict)
    schema_path: Optional[Path] = None  # a curated schema: ImportSchemaGen instead of SchemaGen
    gate_threshold: float = DEFAULT_MIN_AUC  # bound on task.gate_metric (lower or upper by direction)
    max_metric_drop: float = DEFAULT_MAX_METRIC_DROP  # allowed worsening vs the baseline model
    enable_cache: bool = True
    beam_args: Tuple[str, ...] = LOCAL_BEAM_ARGS
    string_features: Tuple[str, ...] = ()  # raw string columns (for slicing the evaluation)

    @property
    def task(self) -> TaskSpec:
        return get_task(self.task_name)

    def as_params(self) -> Dict[str, Any]:
        """Flat config for tracking (MLflow params)."""
        return {
            "pipeline": self.name, "data_path": str(self.data_path), "label": self.label, "task": self.task_name,
            "family": self.family, "schema": str(self.schema_path or "inferred"),
            f"gate_{self.task.gate_metric}": self.gate_threshold, "max_metric_drop": self.max_metric_drop,
            "enable_cache": self.enable_cache, "beam_args": " ".join(self.beam_args),
        }


def default_gate_threshold(task: TaskSpec, profile: DataProfile) -> float:
    """A bound a useful model must pass on this data: AUC 0.7, beating the majority class, or
    an RMSE below the label's standard deviation (better than predicting the mean)."""
    if task.name == "binary":
        return DEFAULT_MIN_AUC
    if task.name == "multiclass":
        return round(profile.majority_share, 4)
    return round(profile.label_std, 6)
