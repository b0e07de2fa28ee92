"""The one config factory: ``build_config(RunRequest) -> PipelineConfig``, used by the CLI, the
Airflow DAG, the Kubeflow compile and the tests alike.

One resolver per kind of input (``_builtin_input``, ``_table_input``, ``_image_input``) turns the
request into the same small value, ``ResolvedInput`` (the use case it amounts to, what ExampleGen
reads, gates, slices, the table or image spec); then one model resolver (``_model``: family,
hyperparameters, pretrained base, teacher, image size) and the gates. A new kind of input is a
new resolver chosen in ``_input_kind``.

It reads what it must check (the CSV, a curated schema) and writes nothing: writing a built-in
use case's data and pinning the curated schema's copy are ``prepare_inputs``, a step the caller
runs before the pipeline does (so an Airflow scheduler parsing the DAG file writes nothing).
"""
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Sequence, Tuple

from components.models.families import TRANSFER_FAMILY
from components.specs import DEFAULT_TEXT_NGRAMS
from components.tasks import SINGLE_TARGET_TASKS, TaskSpec
from core.beam_runners import BeamOptions, pipeline_args
from core.config import DEFAULT_MAX_METRIC_DROP, PipelineConfig
from core.home import Home
from pipelines.inputs.preflight import InputDataError, TargetProfile
from pipelines.inputs.series_tables import ForecastOptions, profile_series, stage_series, window_counts
from serving.runtime.model_config import is_valid_name

DEFAULT_MIN_AUC = 0.7
WEIGHTS_DIR = "weights"  # <home>/weights: pretrained weights fetched once


class ConfigError(ValueError):
    """A request that cannot become a pipeline: one line naming the argument, file or column."""


@dataclass(frozen=True)
class ReadingOptions:
    """How to read --data, and which columns are what (original names or feature keys)."""
    delimiter: Optional[str] = None  # sniffed when not given
    encoding: str = "utf-8"
    na_values: Tuple[str, ...] = ()  # missing-value tokens beyond the usual ones
    drop: Tuple[str, ...] = ()
    features: Tuple[str, ...] = ()
    categorical: Tuple[str, ...] = ()
    datetime: Tuple[str, ...] = ()
    text: Tuple[str, ...] = ()  # free-text columns (found on their own otherwise)
    text_ngrams: Optional[int] = None  # their tokens: words (1), and word pairs (2), and triples (3); None: the default
    slices: Optional[Tuple[str, ...]] = None  # the Evaluator's slice columns; None: a default choice; () none
    span: Optional[str] = None  # span folders: this span instead of the newest
    window: Optional[int] = None  # span folders: train on the newest N accepted spans


@dataclass(frozen=True)
class ImageOptions:
    """Images: --data DIR of class folders, or --data FILE.csv with --image-column."""
    image_column: Optional[str] = None
    image_size: Optional[int] = None  # default: from the data's median size and the family
    augment: Optional[Tuple[str, ...]] = None  # default: flip, rotate, zoom; () for none


@dataclass(frozen=True)
class TransferOptions:
    """Transfer learning and distillation."""
    pretrained: Optional[str] = None  # keras:NAME, or models:/NAME@ALIAS | models:/NAME/VERSION
    weights: Optional[str] = None  # the Keras application's ImageNet weights file
    fine_tune_layers: Optional[int] = None
    distill_from: Optional[str] = None  # models:/NAME@ALIAS | models:/NAME/VERSION (the teacher)


@dataclass(frozen=True)
class TuningOptions:
    tune: Optional[str] = None  # a KerasTuner oracle
    max_trials: int = 6
    warm_start: bool = False


@dataclass(frozen=True)
class RunRequest:
    """What a user asks of one pipeline, as given (names, flags); ``build_config`` checks it."""
    use_case: Optional[str] = None  # a built-in use case (default: the default job) ...
    data: Optional[str] = None  # ... or the user's CSV / span folder / images
    label: Optional[str] = None  # COLUMN; multilabel A,B,C; multitask A:TASK,B:TASK
    task: Optional[str] = None
    name: Optional[str] = None
    home: Optional[str] = None  # default: $MLOPS_HOME or ./.mlops
    metadata_uri: Optional[str] = None  # default: $MLOPS_METADATA_URI, else the home's SQLite file
    train_workers: int = 1  # --train-workers
    family: Optional[str] = None
    hparams: Mapping[str, str] = field(default_factory=dict)
    threshold: Optional[float] = None
    max_drop: float = DEFAULT_MAX_METRIC_DROP
    schemas_dir: Optional[str] = None
    edge: bool = True
    cache: bool = True
    tracking_uri: Optional[str] = None
    reading: ReadingOptions = ReadingOptions()
    images: ImageOptions = ImageOptions()
    transfer: TransferOptions = TransferOptions()
    tuning: TuningOptions = TuningOptions()
    beam: BeamOptions = BeamOptions()
    forecast: ForecastOptions = ForecastOptions()


def parse_hparams(pairs) -> dict:
    """KEY=VALUE strings (as given on a command line) -> a dict."""
    hparams = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--hparam {pair!r}: expected KEY=VALUE")
        hparams[key.strip()] = value.strip()
    return hparams


def parse_targets(label_arg: str, task_name: Optional[str]) -> Tuple[Tuple[str, str], ...]:
    """--label COLUMN; multilabel: --label COLUMN,COLUMN (each 0/1); multitask: COLUMN:TASK,COLUMN:TASK.
    Without a task (inferred later) the task of each is ""."""
    if task_name == "multilabel":
        return tuple((name, "binary") for name in label_arg.split(","))
    if task_name != "multitask":
        return ((label_arg, task_name or ""),)
    targets = []
    for item in label_arg.split(","):
        name, sep, subtask = item.rpartition(":")
        if not sep or subtask not in SINGLE_TARGET_TASKS:
            raise ConfigError(f"--label {label_arg!r}: multitask needs COLUMN:TASK pairs, TASK one of "
                              f"{', '.join(SINGLE_TARGET_TASKS)}")
        targets.append((name, subtask))
    return tuple(targets)


def default_name(data_path: Path) -> str:
    """The pipeline name a file or folder gives: its name without extensions, as a valid model name
    (``My Photos`` -> ``My_Photos``)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", data_path.name.split(".")[0]).strip("_.-")
    return stem or "data"


def default_gate_threshold(task: TaskSpec, target: TargetProfile) -> float:
    """A bound a useful model must pass on this data: AUC 0.7, beating the majority class, or
    an RMSE below the label's standard deviation (better than predicting the mean)."""
    if task.gate_metric == "auc":
        return DEFAULT_MIN_AUC
    if task.name == "multiclass":
        return round(target.majority_share, 4)
    return round(target.std, 6)


@dataclass(frozen=True)
class ResolvedInput:
    """What every kind of input resolves to (a built-in use case, a table, images; the resolvers
    below): the use case it amounts to, what ExampleGen reads, the data's gates and slices."""
    usecase: Any  # pipelines.inputs.datasets.UseCase: task, targets, default family, format, shapes
    data_path: Path  # what ExampleGen reads (a staged copy, or the built-in use case's files)
    gates: Mapping[str, float]  # the data's bounds per label (the use case's own override them)
    slices: Tuple[str, ...]
    rows: int = 0
    builtin: bool = False
    table: Any = None  # core.config.TableSpec of a user's table
    images: Any = None  # core.config.ImageSpec, not sized yet (the family decides)
    layout: Any = None  # pipelines.inputs.spans.SpanLayout of span folders
    span: Optional[int] = None
    window: int = 1
    series: Any = None  # core.config.SeriesSpec of a user's series


@dataclass(frozen=True)
class ModelChoice:
    """The model resolver's answer: family, hyperparameters, pretrained base, teacher, and the
    image spec sized for the family."""
    family: str
    hparams: Mapping[str, str]
    pretrained: Mapping[str, Any]
    teacher: Mapping[str, Any]
    images: Any = None


class CuratedSchema(NamedTuple):
    source: Optional[Path]  # the curated schema a run validates against, if any
    kinds: Optional[Mapping[str, str]]  # its feature kinds, which override the preflight's
    pinned: Optional[Path]  # the content-addressed copy the pipeline reads


def build_config(request: RunRequest) -> PipelineConfig:
    """Checks the request and its data (no TensorFlow import for tables) and returns the config:
    the input's resolver by kind, then the model resolver. Every user error is a ``ConfigError``
    of one line."""
    from components.models.families import UnsupportedModelError
    from components.tasks import UnknownTaskError
    from core.metadata_store import MetadataUriError

    try:
        home = Home.resolve(request.home, request.metadata_uri)
    except MetadataUriError as e:
        raise ConfigError(str(e)) from None
    try:
        name, data_path, resolve = _input_kind(request)
        schema = _curated_schema(request, name, home)
        resolved = resolve(request, name, data_path, home, schema.kinds)
        model = _model(request, home, resolved)
        gates = _gates(request, resolved)
        beam = pipeline_args(request.beam)
    except (UnknownTaskError, UnsupportedModelError, InputDataError) as e:
        raise ConfigError(str(e)) from None
    except ValueError as e:  # a bad hyperparameter, Beam mode or span: already one line
        raise ConfigError(str(e)) from None
    return _pipeline_config(request, home, name, schema, resolved, model, gates, beam)


def _input_kind(request: RunRequest) -> Tuple[str, Optional[Path], Callable[..., ResolvedInput]]:
    """(pipeline name, the user's data path or None, the resolver of this kind of input)."""
    from components.specs import TEXT_NGRAMS
    from components.tasks import get_task
    from pipelines.inputs import datasets

    if request.reading.text_ngrams not in (None, *TEXT_NGRAMS):
        raise ConfigError(f"--text-ngrams {request.reading.text_ngrams}: choose one of "
                          f"{', '.join(map(str, TEXT_NGRAMS))} (words, and pairs, and triples)")
    if request.data:
        if request.use_case:
            raise ConfigError("give either a use case or --data, not both")
        if request.task:
            get_task(request.task)
        data_path = Path(request.data).expanduser().resolve()
        images = _is_images(request, data_path)
        if not request.label and not images:
            raise ConfigError("--data needs --label (the column to predict)")
        name, resolve = request.name or default_name(data_path), _image_input if images else _table_input
        if _is_series(request, images):
            resolve = _series_input
    else:
        usecase_name = request.use_case or datasets.DEFAULT_USE_CASE
        if usecase_name not in datasets.USE_CASES:
            raise ConfigError(f"unknown use case '{usecase_name}'; use cases: {', '.join(sorted(datasets.USE_CASES))}")
        data_path, name, resolve = None, request.name or datasets.USE_CASES[usecase_name].name, _builtin_input
    if not is_valid_name(name):
        raise ConfigError(f"--name {name!r}: a pipeline (and model) name is letters, digits, '_', '.' and '-', "
                          "starting with a letter or digit")
    return name, data_path, resolve


def _curated_schema(request: RunRequest, name: str, home: Home) -> CuratedSchema:
    from pipelines.inputs.schema import curated_schema, feature_kinds, pinned_path

    source = curated_schema(name, Path(request.schemas_dir) if request.schemas_dir else None)
    if source is None:
        return CuratedSchema(None, None, None)
    return CuratedSchema(source, feature_kinds(source), pinned_path(source, home.curated_schemas(name)))


def _data_gates(usecase: Any, profile: Any) -> Dict[str, float]:
    from components.tasks import get_task

    return {label: default_gate_threshold(get_task(subtask), profile.targets[label])
            for label, subtask in usecase.targets}


# the options that shape how one kind of input is read: given to another kind, they would do nothing
_GIVEN = {
    "--drop": lambda r: bool(r.reading.drop), "--features": lambda r: bool(r.reading.features),
    "--categorical": lambda r: bool(r.reading.categorical), "--datetime": lambda r: bool(r.reading.datetime),
    "--text": lambda r: bool(r.reading.text), "--text-ngrams": lambda r: r.reading.text_ngrams is not None,
    "--image-size": lambda r: r.images.image_size is not None, "--augment": lambda r: r.images.augment is not None,
}


def _refuse_unread_options(request: RunRequest, options: Sequence[str], reads: str) -> None:
    """One line naming the ``options`` given that this input does not read, and what it reads."""
    given = [option for option in options if _GIVEN[option](request)]
    if given:
        raise ConfigError(f"{' and '.join(given)}: not read here; {reads}")


def _table_input(request: RunRequest, name: str, data_path: Path, home: Home, schema_kinds) -> ResolvedInput:
    """A user's table: a file, a folder of parts or span folders, read, profiled and keyed."""
    from components.models.families import default_family
    from pipelines.inputs import datasets

    _refuse_unread_options(request, ("--image-size", "--augment"),
                           "a table's columns are its features (images are a folder of class folders, or a CSV "
                           "of paths with --image-column)")
    user = _user_table(request, data_path, home.data_dir(name), schema_kinds)
    task_name = user.profile.task
    usecase = datasets.UseCase(name, task_name, user.targets, "", list, family=default_family(task_name))
    return ResolvedInput(usecase, user.read_path, _data_gates(usecase, user.profile),
                         user.profile.slices(request.reading.slices), rows=user.profile.rows, table=user.table,
                         layout=user.layout, span=user.span, window=user.window)


def _image_input(request: RunRequest, name: str, data_path: Path, home: Home, schema_kinds) -> ResolvedInput:
    """A user's images: a folder of class folders, or a CSV of paths."""
    from pipelines.inputs import datasets

    _refuse_unread_options(request, ("--drop", "--features", "--categorical", "--datetime", "--text", "--text-ngrams"),
                           "images are read from their files, with --label (and --image-column) naming their "
                           "columns in a CSV")
    images, targets, gates = _user_images(request, data_path, home.data_dir(name))
    task_name = targets[0][1] if len(targets) == 1 else (request.task or "multitask")
    usecase = datasets.UseCase(name, task_name, targets, "", list, input_format="tfrecord",
                               family=ANOMALY_FAMILY if task_name == "anomaly" else IMAGE_FAMILY, gate_thresholds=gates)
    return ResolvedInput(usecase, images.staged, {}, (), rows=images.images, images=images)


def _builtin_input(request: RunRequest, name: str, data_path: Optional[Path], home: Home,
                   schema_kinds) -> ResolvedInput:
    """A built-in use case: its own data, profiled where it is made (tables), its gates stated
    (TFRecords), or beating the last value (series)."""
    from pipelines.inputs import datasets
    from pipelines.inputs.preflight import profile_table

    if request.reading.span or request.reading.window:
        raise ConfigError("--span and --window need --data DIR with span folders (span-N/*.csv or YYYYMMDD/*.csv)")
    usecase = datasets.USE_CASES[request.use_case or datasets.DEFAULT_USE_CASE]
    data_path = datasets.data_path(usecase, home.data_dir(name))
    if usecase.input_format == "images":
        from pipelines.inputs.image_folders import scan_files

        images, _, gates = _image_spec(scan_files(data_path, usecase.make()), "folder", usecase.targets, request,
                                       data_path, home.data_dir(name))
        return ResolvedInput(replace(usecase, input_format="tfrecord", gate_thresholds=gates), images.staged, {}, (),
                             rows=images.images, builtin=True, images=images)
    if usecase.input_format == "csv":
        from components.tasks import get_task

        header, rows = usecase.make()
        targets = [(label, get_task(subtask)) for label, subtask in usecase.targets]
        profile = profile_table(data_path, list(header), [[str(v) for v in row] for row in rows], targets, schema_kinds)
        slices = profile.strings if request.reading.slices is None else profile.slices(request.reading.slices)
        return ResolvedInput(usecase, data_path, _data_gates(usecase, profile), slices, rows=profile.rows, builtin=True)
    if usecase.input_format == "series":  # beat repeating the last value
        gates = {usecase.targets[0][0]: round(datasets.naive_forecast_mae(usecase.make(), **usecase.series), 6)}
        return ResolvedInput(usecase, data_path, gates, (), builtin=True)
    return ResolvedInput(usecase, data_path, {}, (), builtin=True)  # TFRecords: the use case states its gates


def _family(request: RunRequest, usecase: Any) -> str:
    family = request.family or usecase.family
    if request.transfer.pretrained:
        if request.family and request.family != TRANSFER_FAMILY:
            raise ConfigError(f"--pretrained builds its own model; leave out --family {request.family}")
        family = TRANSFER_FAMILY
    elif request.family == TRANSFER_FAMILY:
        raise ConfigError(f"family '{TRANSFER_FAMILY}' needs --pretrained SOURCE")
    if request.transfer.pretrained and request.tuning.tune:
        raise ConfigError("--tune searches a family's own space; leave it out with --pretrained")
    return family


TEXT_HPARAMS = ("text_learner", "text_dim")  # read only by a text stem (components.models.text)


def _refuse_text_options_without_text(request: RunRequest, resolved: ResolvedInput) -> None:
    """--text-ngrams and the text stem's hyperparameters on an input with no text column would do
    nothing: one line, as --text on a series."""
    if resolved.table is not None and resolved.table.text_lengths:
        return
    asked = (["--text-ngrams"] if _GIVEN["--text-ngrams"](request) else []) + \
        [f"--hparam {key}" for key in TEXT_HPARAMS if key in request.hparams]
    if asked:
        raise ConfigError(f"{' and '.join(asked)} shape how free-text columns are read; this input has none "
                          "read as text (--text COL reads a column of words as text)")


def _model(request: RunRequest, home: Home, resolved: ResolvedInput) -> ModelChoice:
    """Family, hyperparameters, pretrained base and teacher, checked against the task; images sized."""
    from components.models.families import get_family, resolve_hparams
    from components.tasks import get_task

    usecase = resolved.usecase
    task = get_task(usecase.task)
    family = _family(request, usecase)
    get_family(family, task.name)
    own = usecase.hparams if family == usecase.family else {}
    hparams = {**own, **request.hparams}
    if request.transfer.fine_tune_layers is not None:
        hparams["fine_tune_layers"] = str(request.transfer.fine_tune_layers)
    pretrained, teacher = _pretrained(request, home, resolved.images, task.name)
    resolve_hparams(family, hparams)
    _refuse_text_options_without_text(request, resolved)
    images = resolved.images
    if images is not None:
        base_size = pretrained.get("image_size") or teacher.get("image_size") or None
        images = _sized(images, request, family, own, pretrained="weights" in pretrained, base_size=base_size)
        for source in (pretrained, teacher):
            if source.get("image_size") and source["image_size"] != images.size:
                raise ConfigError(f"{source['source']} takes {source['image_size']}x{source['image_size']} images; "
                                  f"this run resizes to {images.size} (leave out --image-size)")
    return ModelChoice(family, hparams, pretrained, teacher, images)


def _gates(request: RunRequest, resolved: ResolvedInput) -> Dict[str, float]:
    """The gate bound per label: the data's, the use case's own, or --threshold (one target)."""
    targets = resolved.usecase.targets
    if request.threshold is not None and len(targets) > 1:
        raise ConfigError("--threshold sets a single-target gate; multilabel and multitask gates come from the data")
    if request.reading.slices and not resolved.slices:
        raise ConfigError("--slice names columns of a table; this run's data has none to slice on")
    if request.threshold is not None:
        return {targets[0][0]: request.threshold}
    return {**resolved.gates, **(resolved.usecase.gate_thresholds or {})}


def _pipeline_config(request: RunRequest, home: Home, name: str, schema: CuratedSchema, resolved: ResolvedInput,
                     model: ModelChoice, gates: Mapping[str, float], beam: Tuple[str, ...]) -> PipelineConfig:
    usecase = resolved.usecase
    return PipelineConfig(
        name=name, data_path=resolved.data_path, task_name=usecase.task, targets=usecase.targets, home=home,
        family=model.family, hparams=dict(model.hparams), schema_path=schema.pinned, gate_thresholds=dict(gates),
        max_metric_drop=request.max_drop, enable_cache=request.cache, slice_features=resolved.slices,
        input_format=usecase.input_format, tensors=usecase.tensors, series=usecase.series, tuner=request.tuning.tune,
        max_trials=request.tuning.max_trials, warm_start=request.tuning.warm_start,
        edge=request.edge,
        tracking_uri=home.tracking_uri(request.tracking_uri), beam_args=beam,
        span_pattern=resolved.layout.pattern if resolved.layout else "", span=resolved.span,
        window_spans=resolved.window, use_case=usecase.name if resolved.builtin else "",
        pretrained={k: v for k, v in model.pretrained.items() if k != "image_size"},
        distill_from={k: v for k, v in model.teacher.items() if k != "image_size"},
        schema_source=schema.source, table=resolved.table, rows=resolved.rows, images=model.images,
        series_table=resolved.series, train_workers=_train_workers(request),
    )


def _train_workers(request: RunRequest) -> int:
    """--train-workers N: 1 to MAX_TRAIN_WORKERS, and a plain training (the Tuner's trials, a
    pretrained base's two phases and a distillation run in one process)."""
    from components.tf_config import MAX_TRAIN_WORKERS

    workers = request.train_workers
    if not 1 <= workers <= MAX_TRAIN_WORKERS:
        raise ConfigError(f"--train-workers {workers}: give 1 to {MAX_TRAIN_WORKERS}")
    if workers > 1:
        alone = [flag for flag, given in (("--tune", request.tuning.tune),
                                          ("--pretrained", request.transfer.pretrained),
                                          ("--distill-from", request.transfer.distill_from)) if given]
        if alone:
            raise ConfigError(f"--train-workers {workers} with {alone[0]}: that training runs in one process; "
                              "drop one of them")
    return workers


IMAGE_FAMILY = "cnn"  # the default family for images
ANOMALY_FAMILY = "autoencoder"  # for --task anomaly: the convolutional autoencoder on images


def _is_images(request: RunRequest, data_path: Path) -> bool:
    from pipelines.inputs.image_folders import is_image_folder

    return bool(request.images.image_column) or is_image_folder(data_path)


def _user_images(request: RunRequest, data_path: Path, data_dir: Path):
    """(ImageSpec without its size, targets, gate bounds) of a folder of class folders or a CSV of paths."""
    from pipelines.inputs import image_folders as img

    if request.images.image_column:
        if not request.label:
            raise ConfigError("--image-column needs --label (the label column(s) of the CSV)")
        requested = parse_targets(request.label, request.task)
        scan = img.scan_csv(data_path, request.images.image_column, [label for label, _ in requested],
                            request.reading.delimiter, request.reading.encoding)
        layout = "csv"
    else:
        if request.label and request.label != "label":
            raise ConfigError(f"--label {request.label!r}: a folder of class folders has one label, the folder "
                              "name (give a CSV of paths with --image-column for other labels)")
        requested = (("label", request.task or ""),)
        scan = img.scan_folder(data_path)
        layout = "folder"
    return _image_spec(scan, layout, requested, request, data_path, data_dir)


def _image_spec(scan, layout: str, requested, request: RunRequest, data_path: Path, data_dir: Path):
    from components.tasks import get_task
    from core.config import ImageSpec
    from pipelines.inputs import image_folders as img
    from pipelines.inputs.preflight import TargetProfile

    targets = []
    for i, (label, subtask) in enumerate(requested):
        targets.append((label, subtask or img.infer_image_task(scan, i)[0]))
    if request.task and request.task not in ("multilabel", "multitask"):
        targets = [(targets[0][0], request.task)]
    for _, subtask in targets:
        task = get_task(subtask)
        if task.name == "forecast":
            raise ConfigError("--task forecast: image input takes binary, multiclass, regression, anomaly, "
                              "multilabel or multitask")
        if task.name == "anomaly" and len(img.class_counts(scan, 0)) != 2:
            raise ConfigError(f"--task anomaly needs 2 classes (normal and anomalous); found "
                              f"{img.classes_line(img.class_counts(scan, 0))}")
    kinds = img.label_kinds(scan, [subtask for _, subtask in targets])
    gates = {}
    for i, (label, subtask) in enumerate(targets):
        counts = img.class_counts(scan, i)
        values = [float(item.labels[i]) for item in scan.items] if kinds[i] == "numeric" else []
        mean = sum(values) / len(values) if values else 0.0
        std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 if values else 0.0
        profile = TargetProfile(tuple(counts), max(counts.values()) / len(scan.items), std)
        gates[label] = default_gate_threshold(get_task(subtask), profile)
    spec = ImageSpec(source=data_path, staged=data_dir / "input" / img.STAGED_NAME, layout=layout,
                     image_column=request.images.image_column or "", label_kinds=tuple(kinds),
                     classes=img.class_counts(scan, 0) if kinds[0] != "numeric" else {}, images=len(scan.items),
                     skipped=tuple(scan.skipped), median_side=scan.median_side,
                     delimiter=request.reading.delimiter, encoding=request.reading.encoding)
    return spec, tuple(targets), gates


def _registered(uri: str, home: Home, tracking_uri: Optional[str]) -> dict:
    """A model of ours from the registry: its source, version, pushed dir and image size (if any)."""
    from release.mlflow_registry import RegistryError, resolve_model_uri
    from serving.codec.images import read_image_info

    try:
        _, version, path = resolve_model_uri(uri, home.tracking_uri(tracking_uri))
    except RegistryError as e:
        raise ConfigError(str(e)) from None
    if not Path(path).is_dir():
        raise ConfigError(f"{uri}: version {version}'s SavedModel {path} is not on this machine")
    image = read_image_info(path)
    return {"source": uri, "version": version, "model_dir": path, "image_size": image.size if image else 0}


def _pretrained(request: RunRequest, home: Home, images, task_name: str) -> Tuple[dict, dict]:
    """(pretrained base, teacher) as the Trainer needs them, checked: sources, files, sizes."""
    from components.models.families import KERAS_BASES, KERAS_PREFIX, MODELS_PREFIX, imagenet_weights_name

    pretrained, teacher = {}, {}
    source = request.transfer.pretrained
    if source:
        if source.startswith(KERAS_PREFIX):
            name = source[len(KERAS_PREFIX):]
            if name not in KERAS_BASES:
                raise ConfigError(f"--pretrained {source}: choose one of "
                                  f"{', '.join(KERAS_PREFIX + b for b in KERAS_BASES)} or {MODELS_PREFIX}NAME@ALIAS")
            if images is None:
                raise ConfigError(f"--pretrained {source} needs images (--data DIR of class folders, or "
                                  "--image-column)")
            if request.transfer.weights:
                weights = Path(request.transfer.weights).expanduser().resolve()
                if not weights.is_file():
                    raise ConfigError(f"--weights {request.transfer.weights}: no such file")
            else:
                weights = home.root / WEIGHTS_DIR / imagenet_weights_name(name)  # fetched by prepare_inputs
            pretrained = {"source": source, "weights": str(weights), "fetch": not request.transfer.weights}
        elif source.startswith(MODELS_PREFIX):
            pretrained = _registered(source, home, request.tracking_uri)
        else:
            raise ConfigError(f"--pretrained {source!r}: give {KERAS_PREFIX}NAME or {MODELS_PREFIX}NAME@ALIAS")
    elif request.transfer.weights:
        raise ConfigError("--weights goes with --pretrained keras:NAME")
    if request.transfer.distill_from:
        if not request.transfer.distill_from.startswith(MODELS_PREFIX):
            raise ConfigError(f"--distill-from {request.transfer.distill_from!r}: give {MODELS_PREFIX}NAME@ALIAS or "
                              f"{MODELS_PREFIX}NAME/VERSION")
        if task_name not in ("binary", "multiclass"):
            raise ConfigError(f"--distill-from: distillation needs a binary or multiclass task, not {task_name}")
        if pretrained:
            raise ConfigError("give --pretrained or --distill-from, not both")
        teacher = _registered(request.transfer.distill_from, home, request.tracking_uri)
    return pretrained, teacher


def _sized(images, request: RunRequest, family: str, hparams: Mapping[str, Any], pretrained: bool = False,
           base_size: Optional[int] = None):
    """The ImageSpec with its size and augmentation: --image-size, else from the data and the family."""
    from components.models.families import AUGMENTATIONS, DEFAULT_AUGMENT, min_image_size
    from pipelines.inputs.image_folders import IMAGE_SIZES, default_image_size

    smallest = min_image_size(family, hparams)
    if request.images.image_size is not None:
        if request.images.image_size < smallest:
            raise ConfigError(f"--image-size {request.images.image_size}: family '{family}' needs at least {smallest}")
        size, reason = request.images.image_size, "--image-size"
    elif base_size:
        size, reason = base_size, "the size the pretrained model or teacher takes"
    else:
        size = default_image_size(images.median_side, smallest, pretrained)
        reason = (f"the smallest of {', '.join(map(str, IMAGE_SIZES))} at or above the images' median side "
                  f"{images.median_side} px and family {family}'s minimum {smallest}, at most 128")
    augment = DEFAULT_AUGMENT if request.images.augment is None else tuple(request.images.augment)
    if family == ANOMALY_FAMILY:  # the autoencoder reconstructs what it sees: no augmentation
        augment = ()
    unknown = sorted(set(augment) - set(AUGMENTATIONS))
    if unknown:
        raise ConfigError(f"--augment {','.join(unknown)}: choose among {', '.join(AUGMENTATIONS)} (or none)")
    return replace(images, size=size, size_reason=reason, augment=augment)


class _UserTable(NamedTuple):
    table: Any  # core.config.TableSpec
    layout: Any  # pipelines.inputs.spans.SpanLayout, or None for a file or a folder of parts
    span: Optional[int]
    window: int
    read_path: Path  # what ExampleGen reads: the staged file, or the staged spans' root
    targets: Tuple[Tuple[str, str], ...]  # (key, task)
    profile: Any  # pipelines.inputs.preflight.DataProfile


def _user_table(request: RunRequest, data_path: Path, data_dir: Path, schema_kinds) -> _UserTable:
    """The user's file (or span folder) read, profiled and keyed."""
    from components.tasks import get_task
    from core.config import TableSpec
    from pipelines.inputs.preflight import FEATURE, LABEL, ProfileOptions, profile_source
    from pipelines.inputs.spans import DEFAULT_WINDOW, detect
    from pipelines.inputs.tables import open_table

    layout = detect(data_path)  # span-N/ or YYYYMMDD/ folders, else a file or a folder of parts
    span = layout.parse(request.reading.span) if layout and request.reading.span else None
    if layout is None and (request.reading.span or request.reading.window):
        raise ConfigError("--span and --window need --data DIR with span folders (span-N/*.csv or YYYYMMDD/*.csv)")
    window = DEFAULT_WINDOW if request.reading.window is None else request.reading.window
    if window < 1:
        raise ConfigError(f"--window {window}: need at least 1 span")
    source_path = layout.folders[layout.newest if span is None else span] if layout else data_path
    source = open_table(source_path, request.reading.delimiter, request.reading.encoding)
    requested = parse_targets(request.label, request.task)
    options = ProfileOptions(na_values=tuple(request.reading.na_values), drop=tuple(request.reading.drop),
                             features=tuple(request.reading.features), categorical=tuple(request.reading.categorical),
                             datetime=tuple(request.reading.datetime), text=tuple(request.reading.text),
                             schema_kinds=schema_kinds or {},
                             head_tasks=tuple(subtask for _, subtask in requested) if request.task == "multitask"
                             else ())
    profile = profile_source(source, [label for label, _ in requested], request.task, options)
    task_name = profile.task
    keys = [source.columns.key(label) for label, _ in requested]
    if task_name in ("multitask", "multilabel"):
        targets = tuple((key, subtask) for key, (_, subtask) in zip(keys, requested))
    else:
        targets = ((keys[0], task_name),)
    for key, subtask in targets:
        get_task(subtask)
    if layout:
        staged_root = data_dir / "input"
        staged = staged_root / source_path.name / "data.csv"
        read_path = staged_root
    else:
        staged = read_path = data_dir / "input" / f"{data_path.name.split('.')[0]}.csv"
    kept = {c.key: c.kind.kind for c in profile.columns if c.role in (FEATURE, LABEL)}
    table = TableSpec(
        source=source_path, staged=staged, format=source.format, delimiter=source.delimiter, encoding=source.encoding,
        columns=tuple(zip(source.columns.names, source.columns.keys)), kinds=kept,
        date_formats={c.key: c.kind.date_format for c in profile.columns if c.key in kept and c.kind.date_format},
        text_lengths={c.key: c.kind.text_length for c in profile.columns if c.key in kept and c.kind.text_length},
        text_cut={c.key: c.kind.text_cut for c in profile.columns if c.key in kept and c.kind.text_cut},
        text_ngrams=DEFAULT_TEXT_NGRAMS if request.reading.text_ngrams is None else request.reading.text_ngrams,
        left_out={c.key: c.reason for c in profile.left_out}, na_values=tuple(request.reading.na_values),
        rows=profile.rows, label_missing=profile.label_missing, task_reason=profile.task_reason,
        description=source.describe)
    return _UserTable(table, layout, span, window if layout else 1, read_path, targets, profile)


def prepare_inputs(config: PipelineConfig) -> PipelineConfig:
    """The writes a run needs before its pipeline starts: the home, the pipeline root's record of its
    ML Metadata store, the built-in use case's data (unchanged files kept, so the cache holds) and
    the curated schema's content-addressed copy."""
    from core.metadata_store import MetadataStoreSpec, MetadataUriError, bind_pipeline_root
    from pipelines.inputs.datasets import USE_CASES, materialize
    from pipelines.inputs.schema import pinned_copy

    config.home.root.mkdir(parents=True, exist_ok=True)  # ML Metadata's SQLite file goes here
    try:
        bind_pipeline_root(config.home.pipeline_root(config.name), config.home.metadata,
                           MetadataStoreSpec(sqlite=config.home.metadata_path))
    except MetadataUriError as e:
        raise ConfigError(str(e)) from None
    if config.use_case:
        materialize(USE_CASES[config.use_case], config.home.data_dir(config.name))
    if config.series_table:
        stage_series_input(config.series_table)
    if config.table:
        from pipelines.inputs.staging import stage
        from pipelines.inputs.tables import open_table

        table = config.table
        stage(open_table(table.source, table.delimiter if table.format == "csv" else None, table.encoding or "utf-8"),
              table.staged, table.keep, table.kinds, [key for key, _ in config.targets], table.na_values)
    if config.images:
        from pipelines.inputs import image_folders as img

        spec = config.images
        if spec.layout == "csv":
            scan = img.scan_csv(spec.source, spec.image_column, list(config.label_names), spec.delimiter,
                                spec.encoding)
        else:
            scan = img.scan_folder(spec.source)
        try:
            _, broken = img.stage(scan, spec.staged, list(config.label_names), spec.label_kinds)
        except InputDataError as e:
            raise ConfigError(str(e)) from None
        if broken:  # headers that read but images that do not decode
            config = replace(config, images=replace(spec, skipped=spec.skipped + tuple(broken),
                                                    images=spec.images - len(broken)))
    if config.pretrained.get("fetch") and not Path(config.pretrained["weights"]).is_file():
        from components.models.families import KERAS_PREFIX
        from components.models.transfer import WeightsError, fetch_imagenet_weights

        try:
            fetch_imagenet_weights(config.pretrained["source"][len(KERAS_PREFIX):], Path(config.pretrained["weights"]))
        except WeightsError as e:
            raise ConfigError(str(e)) from None
    if config.schema_source:
        pinned_copy(config.schema_source, config.home.curated_schemas(config.name))
    return config


# A user's series (--task forecast --data F --time COL --horizon H): windows scaled by themselves
# (components.transform.window_scaled_features), so the Evaluator's MAE of the scaled target is a
# MASE and the gate "MASE < 1" beats the seasonal naive forecast's in-sample error.
FORECAST_GATE = 1.0
FORECAST_FAMILY = "dnn"  # the window flattened, wide & deep; see docs/models.md for the measurements
FORECAST_HPARAMS = {"epochs": 200, "patience": 20, "batch_size": 16}


def _is_series(request: RunRequest, images: bool) -> bool:
    """--task forecast on --data: a series table, which needs --time and --horizon."""
    given = [flag for flag, value in (("--time", request.forecast.time), ("--horizon", request.forecast.horizon),
                                      ("--series-id", request.forecast.series_id),
                                      ("--lookback", request.forecast.lookback),
                                      ("--covariates", request.forecast.covariates)) if value]
    if request.task != "forecast":
        if given:
            raise ConfigError(f"{given[0]} goes with --task forecast")
        return False
    if images:
        return False  # the image resolver names what images take
    if not request.forecast.time or request.forecast.horizon is None:
        raise ConfigError("--task forecast on --data needs --time COL (the time column) and --horizon H (the steps "
                          "to forecast)")
    return True


def _series_input(request: RunRequest, name: str, data_path: Path, home: Home, schema_kinds) -> ResolvedInput:
    """A user's series: read, checked and described; staged by ``prepare_inputs``."""
    from pipelines.inputs import datasets
    from pipelines.inputs.series_tables import DATE_COLUMN, SERIES_COLUMN, VALUE_COLUMN

    if request.reading.span or request.reading.window:
        raise ConfigError("--span and --window read span folders of a table; a series is one file or folder")
    _refuse_unread_options(request, ("--drop", "--features", "--categorical", "--datetime", "--text", "--text-ngrams",
                                     "--image-size", "--augment"),
                           "a series reads its values, --time, --series-id and --covariates (the columns a forecast "
                           "reads besides its values)")
    spec = _series_spec(request, data_path, home.data_dir(name) / "series")
    label = "target"
    usecase = datasets.UseCase(
        name, "forecast", ((label, "forecast"),), "", list, input_format="series",
        series={"column": VALUE_COLUMN, "lookback": spec.lookback, "horizon": spec.horizon, "key": SERIES_COLUMN,
                "validation": True, "covariates": spec.covariate_keys, "dates": DATE_COLUMN if spec.calendar else ""},
        # the training defaults hold for every family (--family picks one; --hparam still overrides)
        tensors={"window": (spec.lookback, 1)}, family=request.family or FORECAST_FAMILY, hparams=FORECAST_HPARAMS,
        gate_thresholds={label: FORECAST_GATE})
    return ResolvedInput(usecase, spec.staged, {}, (), rows=spec.rows, series=spec)


def _series_spec(request: RunRequest, data_path: Path, staged: Path):
    from core.config import SeriesSpec
    from pipelines.inputs.tables import open_table

    options = request.forecast
    profile = profile_series(open_table(data_path, request.reading.delimiter, request.reading.encoding),
                             request.label, options, tuple(request.reading.na_values))
    train, validation = window_counts([len(one.values) for one in profile.series], profile.lookback, profile.horizon)
    return SeriesSpec(
        source=data_path, staged=staged, time=options.time, label=request.label, series_id=tuple(options.series_id),
        axis=profile.axis, lookback=profile.lookback, lookback_reason=profile.lookback_reason, horizon=profile.horizon,
        series=len(profile.series), rows=profile.rows, filled=profile.filled, first_gap=profile.first_gap,
        trimmed=profile.trimmed, train_windows=train, validation_windows=validation,
        delimiter=request.reading.delimiter, encoding=request.reading.encoding,
        na_values=tuple(request.reading.na_values), covariates=profile.covariates, unread=profile.unread)


def series_profile_again(spec):
    """The series of a ``SeriesSpec`` read again (the preflight keeps no values in the config)."""
    from pipelines.inputs.tables import open_table

    source = open_table(spec.source, spec.delimiter, spec.encoding)
    options = ForecastOptions(spec.time, spec.horizon, spec.series_id, spec.lookback,
                              tuple(column for column, _ in spec.covariates))
    try:
        return profile_series(source, spec.label, options, tuple(spec.na_values))
    except InputDataError as e:  # the file changed since the preflight
        raise ConfigError(str(e)) from None


def stage_series_input(spec) -> None:
    """Writes the staged split of the series (pipelines.inputs.series_tables.stage_series)."""
    stage_series(series_profile_again(spec), spec.staged)
