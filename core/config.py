"""PipelineConfig: everything one pipeline run depends on, built by ``pipelines.configure`` and
injected into ``create_pipeline`` (nothing is read from globals or the environment at import)."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from components.specs import DEFAULT_TEXT_NGRAMS, ColumnSpec, ImageInput, TrainSpec, TransformSpec, TuneSpec
from components.tasks import TaskSpec, get_task
from core.home import Home
from serving.codec.images import FILE_FEATURE, IMAGE_FEATURE
from serving.codec.periods import CALENDAR_PARTS, SeriesInfo, TimeAxis

BEAM_MODES = ("in_memory", "multi_threading", "multi_processing")  # DirectRunner's running modes
DIRECT_RUNNER_DEFAULTS = ("in_memory", 1)  # Beam's own defaults for DirectRunner's mode and workers
# Any of these stops TFX from packaging itself for Beam's workers (tfx.utils.dependency_utils)
BEAM_DEPENDENCY_FLAGS = ("--extra_packages", "--setup_file", "--requirements_file", "--worker_harness_container_image",
                         "--sdk_container_image")
PROJECT_SETUP = Path(__file__).resolve().parents[1] / "setup.py"


def beam_args(mode: str = "in_memory", workers: int = 1, extra: Tuple[str, ...] = ()) -> Tuple[str, ...]:
    """Beam pipeline args. DirectRunner in one process by default: 1.5-2x faster than
    multi_processing on small data (each worker imports TensorFlow again). ``extra`` is passed
    through; with another runner (``--runner=DataflowRunner``, Flink, Spark) only ``extra`` is used.

    DirectRunner's defaults give no args at all: TFX's Beam executors build an sdist of the whole
    TFX install before every component whenever the args are non-empty (3 s and 42 MB left in
    /tmp each; a local runner needs none of it) and name no dependency. Other DirectRunner args get
    this project's setup.py as that dependency: DirectRunner never reads it (its workers share this
    interpreter), and TFX then packages nothing."""
    if mode not in BEAM_MODES:
        raise ValueError(f"Beam mode '{mode}': choose one of {', '.join(BEAM_MODES)}")
    if workers < 1:
        raise ValueError(f"Beam workers {workers}: need at least 1")
    runner = next((a.split("=", 1)[1] for a in extra if a.startswith("--runner=")), "DirectRunner")
    if runner != "DirectRunner":
        return tuple(extra)
    args = tuple(extra) if (mode, workers) == DIRECT_RUNNER_DEFAULTS else \
        (f"--direct_running_mode={mode}", f"--direct_num_workers={workers}", *extra)
    if args and not any(a.split("=", 1)[0] in BEAM_DEPENDENCY_FLAGS for a in args):
        args += (f"--setup_file={PROJECT_SETUP}",)
    return args


LOCAL_BEAM_ARGS: Tuple[str, ...] = beam_args()
DEFAULT_MAX_METRIC_DROP = 0.01
TRAIN_EVAL_BUCKETS = (3, 1)  # hash split of the input: 75% train, 25% eval
BASELINE_RESOLVER_ID = "baseline_resolver"  # resolves on every run; never cached
WARM_START_RESOLVER_ID = "warm_start_resolver"
PUSHER_ID = "Pusher"
EDGE_EXPORT_ID = "EdgeExport"
PREVIOUS_SPAN_RESOLVER_ID = "previous_span_resolver"
WINDOW_RESOLVER_ID = "span_window_resolver"
DRIFT_GATE_ID = "DriftGate"
RESOLVER_IDS = (BASELINE_RESOLVER_ID, WARM_START_RESOLVER_ID, PREVIOUS_SPAN_RESOLVER_ID, WINDOW_RESOLVER_ID)


@dataclass(frozen=True)
class TableSpec:
    """A user's table as the preflight read it: where it is and how to read it, and each column's
    key, kind and role. ``prepare_inputs`` stages it for ExampleGen; the Transform, the export and
    the servers use the rest (users keep typing and sending the original names)."""
    source: Path  # the user's file or folder of parts (with span folders: the chosen span's)
    staged: Path  # the copy ExampleGen reads (``pipelines.inputs.staging``)
    format: str = "csv"  # csv | parquet
    delimiter: str = ","
    encoding: str = "utf-8"
    columns: Tuple[Tuple[str, str], ...] = ()  # (original name, key) of every column, in file order
    kinds: Mapping[str, str] = field(default_factory=dict)  # key -> numeric|integer|boolean|datetime|string|text
    date_formats: Mapping[str, str] = field(default_factory=dict)  # datetime key -> iso|ymd_slash|mdy_slash|unix
    text_lengths: Mapping[str, int] = field(default_factory=dict)  # text key -> the words it is padded or cut to
    text_cut: Mapping[str, float] = field(default_factory=dict)  # text key -> the share of its values cut there
    text_ngrams: int = DEFAULT_TEXT_NGRAMS  # text columns' tokens: words (1), and word pairs (2), and triples (3)
    left_out: Mapping[str, str] = field(default_factory=dict)  # key -> why it is not a feature
    na_values: Tuple[str, ...] = ()  # missing-value tokens beyond the usual ones
    rows: int = 0
    label_missing: int = 0  # rows left out for a missing label
    task_reason: str = ""  # why the task is what it is (inferred or --task)
    description: str = ""  # how the file was read

    @property
    def keep(self) -> Tuple[str, ...]:
        """The staged columns: features and labels, in file order."""
        return tuple(key for _, key in self.columns if key in self.kinds)

    @property
    def text_keys(self) -> Tuple[str, ...]:
        """The columns read as free text (words), in the table's order."""
        return tuple(key for key, kind in self.kinds.items() if kind == "text")

    def name_of(self, key: str) -> str:
        return next((name for name, k in self.columns if k == key), key)

    def shown(self, key: str) -> str:
        """A column as a message names it: its name, or its place when its header is blank."""
        place = next((i for i, (_, k) in enumerate(self.columns) if k == key), None)
        return self.name_of(key) or (f"column {place + 1} (no name)" if place is not None else key)

    @property
    def renamed(self) -> Dict[str, str]:
        """Original name -> key of the columns the model reads, where the two differ."""
        return {name: key for name, key in self.columns if name != key and key in self.kinds}


@dataclass(frozen=True)
class ImageSpec:
    """A user's images (a folder of class folders, or a CSV of paths) as the scan found them;
    ``prepare_inputs`` stages them as a TFRecord of encoded bytes, label(s) and file path."""
    source: Path  # the folder, or the CSV of paths
    staged: Path  # the TFRecord ImportExampleGen reads
    layout: str = "folder"  # folder | csv
    image_column: str = ""  # the CSV's path column
    label_kinds: Tuple[str, ...] = ()  # per label: integer | numeric | string (as staged)
    classes: Mapping[str, int] = field(default_factory=dict)  # first label's class -> images
    images: int = 0
    skipped: Tuple[Tuple[str, str], ...] = ()  # (file or class, why), as the scan found them
    median_side: int = 0
    size: int = 32  # the side every image is resized to in the graph
    size_reason: str = ""
    augment: Tuple[str, ...] = ()
    delimiter: Optional[str] = None  # the CSV's
    encoding: str = "utf-8"


@dataclass(frozen=True)
class SeriesSpec:
    """A user's series table (``--task forecast --time COL``) as the preflight read it: how to read
    it again, its axis, windows and series; ``prepare_inputs`` stages it split by time
    (``pipelines.inputs.series_tables``) for the series ExampleGen."""
    source: Path
    staged: Path  # the folder of train/ and eval/ files the series ExampleGen reads
    time: str  # the columns as the user named them
    label: str
    series_id: Tuple[str, ...]
    axis: TimeAxis  # how the time column reads: format, frequency (and so the season), anchor
    lookback: int
    lookback_reason: str
    horizon: int
    series: int  # how many series
    rows: int
    filled: int = 0  # points interpolated over gaps and missing values
    first_gap: str = ""
    trimmed: int = 0  # rows with no value before a series' first value or after its last, left out
    train_windows: int = 0  # (window, target) examples of the train split, over all series
    validation_windows: int = 0
    delimiter: Optional[str] = None
    encoding: str = "utf-8"
    na_values: Tuple[str, ...] = ()
    covariates: Tuple[Tuple[str, str], ...] = ()  # (column, feature key) of each known-ahead covariate
    unread: Tuple[str, ...] = ()  # the table's other columns, as named

    @property
    def covariate_keys(self) -> Tuple[str, ...]:
        return tuple(key for _, key in self.covariates)

    @property
    def known_ahead(self) -> str:
        """What the model knows of each forecast step, in words ("" for nothing)."""
        parts = [f"calendar ({CALENDAR_PARTS[self.calendar]})"] if self.calendar else []
        if self.covariates:
            parts.append(f"covariates {', '.join(column for column, _ in self.covariates)}")
        return "; ".join(parts)

    @property
    def calendar(self) -> str:
        """The frequency whose calendar parts the model reads ("" for none: serving.codec.periods)."""
        return self.axis.frequency if self.axis.has_calendar else ""

    @property
    def frequency(self) -> str:
        return self.axis.frequency

    @property
    def season(self) -> int:
        return self.axis.season

    @property
    def time_format(self) -> str:
        return self.axis.format

    @property
    def info(self) -> SeriesInfo:
        """What the exported model carries for clients (serving.codec.periods.SeriesInfo)."""
        return SeriesInfo(self.time, self.label, self.series_id, self.axis, self.lookback, self.horizon,
                          self.covariates)


@dataclass(frozen=True)
class VertexTraining:
    """The Trainer on Vertex AI Training (`mlops compile --trainer-replicas N`): a chief and N - 1
    workers of one machine type running this project's image; Vertex gives each its TF_CONFIG."""
    replicas: int
    machine: str
    project: str
    region: str
    image: str


@dataclass(frozen=True)
class PipelineConfig:
    name: str
    data_path: Path  # CSV (CsvExampleGen), TFRecord (ImportExampleGen) or a series folder (SeriesExampleGen)
    task_name: str
    targets: Tuple[Tuple[str, str], ...]  # (label column, task); several for multitask
    home: Home
    family: str = "dnn"
    hparams: Mapping[str, Any] = field(default_factory=dict)
    schema_path: Optional[Path] = None  # a curated schema: ImportSchemaGen instead of SchemaGen
    gate_thresholds: Mapping[str, float] = field(default_factory=dict)  # label -> bound on its gate metric
    max_metric_drop: float = DEFAULT_MAX_METRIC_DROP  # allowed worsening vs the baseline model
    enable_cache: bool = True
    beam_args: Tuple[str, ...] = LOCAL_BEAM_ARGS
    slice_features: Tuple[str, ...] = ()  # raw columns the Evaluator slices on (--slice, else a default choice)
    input_format: str = "csv"  # csv | tfrecord | series
    tensors: Mapping[str, Tuple[int, ...]] = field(default_factory=dict)  # multi-valued features' shapes
    series: Mapping[str, Any] = field(default_factory=dict)  # column, lookback, horizon (series input)
    tuner: Optional[str] = None  # random | bayesian | hyperband: a Tuner component feeds the Trainer
    train_workers: int = 1  # training processes (components.train_workers): MultiWorkerMirroredStrategy past 1
    vertex_training: Optional[VertexTraining] = None  # a compiled pipeline's Trainer on Vertex AI Training
    max_trials: int = 6
    warm_start: bool = False  # start from the last blessed model of the same family and inputs
    edge: bool = True  # TF Lite variants of each blessed model (EdgeExport), shipped beside it
    tracking_uri: str = ""  # MLflow tracking + registry; empty: the home's SQLite store
    span_pattern: str = ""  # data_path is a folder of spans (pipelines.inputs.spans): newest span, drift gate, window
    span: Optional[int] = None  # rerun this span instead of the newest
    window_spans: int = 1  # train on the newest N accepted spans (span layouts)
    use_case: str = ""  # a built-in use case: ``pipelines.configure.prepare_inputs`` writes its data
    schema_source: Optional[Path] = None  # the curated schema that ``schema_path`` pins a copy of
    table: Optional[TableSpec] = None  # a user's table (--data): read, staged, keyed
    rows: int = 0  # rows of the (newest span's) table, when profiled: small data trains differently
    images: Optional[ImageSpec] = None  # a user's images (--data DIR of class folders, or a CSV of paths)
    pretrained: Mapping[str, Any] = field(default_factory=dict)  # source, weights | model_dir, version
    distill_from: Mapping[str, Any] = field(default_factory=dict)  # source, model_dir, version (the teacher)
    series_table: Optional[SeriesSpec] = None  # a user's series (--task forecast --time COL)

    @property
    def mlflow_uri(self) -> str:
        return self.tracking_uri or self.home.mlflow_uri

    @property
    def task(self) -> TaskSpec:
        return get_task(self.task_name)

    @property
    def label(self) -> str:
        """The first (for single-task pipelines, the only) label column."""
        return self.targets[0][0]

    @property
    def label_names(self) -> Tuple[str, ...]:
        return tuple(name for name, _ in self.targets)

    @property
    def labels_shown(self) -> Tuple[str, ...]:
        """The labels as the user named them: a table's columns, a series' value column (its
        forecaster's target is "target")."""
        if self.series_table:
            return (self.series_table.label,)
        if self.table:
            return tuple(self.table.name_of(label) for label in self.label_names)
        return self.label_names

    def transform_spec(self) -> TransformSpec:
        """What the preprocessing_fn needs to know (its JSON is part of the cache key)."""
        table = self.table
        tfidf = self._reads_tfidf() if table else False
        columns = {key: ColumnSpec(kind, table.date_formats.get(key, ""), table.text_lengths.get(key, 0),
                                   table.text_ngrams if key in table.text_lengths else 1, tfidf)
                   for key, kind in table.kinds.items()} \
            if table else None
        image = ImageInput(IMAGE_FEATURE, self.images.size, tuple(self.images.augment), (FILE_FEATURE,)) \
            if self.images else None
        return TransformSpec(task=self.task_name, targets=tuple(tuple(t) for t in self.targets),
                             tensors={name: tuple(shape) for name, shape in self.tensors.items()}, columns=columns,
                             names=tuple(tuple(pair) for pair in table.columns) if table else (),
                             left_out=dict(table.left_out) if table else {},
                             na_values=tuple(table.na_values) if table else (), image=image,
                             season=self.series_table.season if self.series_table else 0,
                             horizon=self.series_table.horizon if self.series_table else 0,
                             covariates=self.series_table.covariate_keys if self.series_table else (),
                             calendar=self.series_table.calendar if self.series_table else "")

    def _reads_tfidf(self) -> bool:
        """Whether the model's text stem reads TF-IDF weights (its text_learner, components.models.text)."""
        from components.models.families import resolve_hparams

        return resolve_hparams(self.family, self.hparams).get("text_learner") == "tfidf"

    def train_spec(self, backup_root: str = "") -> TrainSpec:
        """What run_fn needs: the Transform's spec, the family, overrides, the data's size, transfer."""
        return TrainSpec(**vars(self.transform_spec()), family=self.family, hparams=dict(self.hparams), rows=self.rows,
                         pretrained=dict(self.pretrained), distill_from=self.distill_from.get("model_dir", ""),
                         backup_root=backup_root,
                         series_info=self.series_table.info.as_json() if self.series_table else {},
                         train_workers=self.train_workers if self.train_workers > 1 else 0)

    def tune_spec(self) -> TuneSpec:
        return TuneSpec(**vars(self.train_spec()), tuner=self.tuner or "", max_trials=self.max_trials)

    def as_params(self) -> Dict[str, Any]:
        """Flat config for tracking (MLflow params)."""
        params = {
            "pipeline": self.name, "data_path": str(self.data_path), "task": self.task_name,
            "labels": ",".join(self.labels_shown), "family": self.family,
            "schema": str(self.schema_path or "inferred"), "max_metric_drop": self.max_metric_drop,
            "enable_cache": self.enable_cache, "beam_args": " ".join(self.beam_args),
            "tuner": self.tuner or "none", "max_trials": self.max_trials, "warm_start": self.warm_start,
            "edge": self.edge,
        }
        if self.pretrained:
            params.update({f"pretrained.{k}": v for k, v in self.pretrained.items()})
        if self.distill_from:
            params.update({f"teacher.{k}": v for k, v in self.distill_from.items()})
        if self.span_pattern:
            params.update({"span_pattern": self.span_pattern, "span": "newest" if self.span is None else self.span,
                           "window_spans": self.window_spans})
        params.update({f"gate.{label}": bound for label, bound in self.gate_thresholds.items()})
        if self.table:
            params.update({"data.source": str(self.table.source), "data.read_as": self.table.description,
                           "data.task_reason": self.table.task_reason,
                           "data.left_out": ",".join(f"{k}:{why}" for k, why in self.table.left_out.items())})
        if self.series_table:
            spec = self.series_table
            params.update({"data.source": str(spec.source), "series.count": spec.series, "series.frequency":
                           spec.frequency, "series.lookback": spec.lookback, "series.horizon": spec.horizon,
                           "series.filled": spec.filled})
        if self.images:
            params.update({"data.source": str(self.images.source), "data.images": self.images.images,
                           "data.classes": len(self.images.classes), "image.size": self.images.size,
                           "image.augment": ",".join(self.images.augment) or "none"})
        return params


@dataclass(frozen=True)
class Locations:
    """Where a pipeline reads and writes, injected into ``create_pipeline``: the local home by
    default; URIs (e.g. ``gs://``) when the pipeline is compiled for Kubeflow / Vertex."""
    pipeline_root: str
    data: str  # the input file (a series folder for series input)
    serving_base: str  # <serving>/<name>: where the Pusher writes versions
    training_backups: str
    metadata: Any  # core.metadata_store.MetadataStoreSpec; None: the orchestrator's own
    span_pattern: str = ""  # with spans, ``data`` is their folder and this ExampleGen's pattern in it

    @property
    def input_base(self) -> str:
        return self.data if self.span_pattern else self.data.rsplit("/", 1)[0]

    @property
    def input_pattern(self) -> str:
        return self.span_pattern or self.data.rsplit("/", 1)[1]

    @classmethod
    def local(cls, config: "PipelineConfig") -> "Locations":
        home = config.home
        return cls(str(home.pipeline_root(config.name)), str(config.data_path),
                   str(home.model_base_dir(config.name)), str(home.training_backups(config.name)),
                   home.metadata, config.span_pattern)

    @classmethod
    def remote(cls, config: "PipelineConfig", root: str, data_uri: str) -> "Locations":
        """Everything under ``root`` (``<root>/pipelines/<name>``, ``<root>/serving/<name>``, ...),
        the home's layout, with the input at ``data_uri``."""
        root = root.rstrip("/")
        return cls(f"{root}/pipelines/{config.name}", data_uri, f"{root}/serving/{config.name}",
                   f"{root}/training-backups/{config.name}", None, config.span_pattern)
