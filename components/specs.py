"""What crosses the TFX boundary, typed: the ``custom_config`` that Transform, the Trainer and the
Tuner receive, built by ``PipelineConfig`` and parsed once at the top of ``preprocessing_fn``,
``run_fn`` and ``tuner_fn``. A key this module does not know, or a required one missing, fails
loudly (a misspelt key was a silent default).

The JSON is the same dict as before these types existed, key for key (optional groups are left
out when absent), so a cached run stays cached. Pure Python: no TensorFlow.
"""
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple, Type, TypeVar

Spec = TypeVar("Spec", bound="TransformSpec")


class SpecError(ValueError):
    """A custom_config that is not the spec it claims to be (unknown or missing keys)."""


TEXT_NGRAMS = (1, 2, 3)  # a text column's tokens: its words, and word pairs, and triples
# words and pairs by default: what the TF-IDF + logistic regression baseline reads, and on the bench's and
# a probe's tables as good or better than words alone (docs/models.md)
DEFAULT_TEXT_NGRAMS = 2
# a user's series: the validation windows from which the Trainer chooses its correction's share, and
# which staging gives a table of few series from their last points (pipelines/inputs/series_tables)
VALIDATION_WINDOWS = 30


@dataclass(frozen=True)
class ColumnSpec:
    """A user's column as the preflight read it: its kind and, for date-times, the format."""
    kind: str
    format: str = ""
    length: int = 0  # text: the words its values are padded or cut to (always set; left out of the JSON when 0)
    ngrams: int = 1  # text: its words alone (1), or with word pairs (2) and triples (3) (left out of the JSON when 1)
    tfidf: bool = True  # text: its TF-IDF weights too, for the ``tfidf`` text learner (left out of the JSON when
    # True): another learner never reads them, so neither the Transform nor the served graph computes them


@dataclass(frozen=True)
class ImageInput:
    feature: str  # the encoded image bytes' feature
    size: int  # the side images are resized to
    augment: Tuple[str, ...] = ()  # training-only augmentation layers
    ignore: Tuple[str, ...] = ()  # features of the staged examples that are not model inputs (file names)


@dataclass(frozen=True)
class TransformSpec:
    """What the preprocessing_fn needs to know (and the Trainer too)."""
    task: str
    targets: Tuple[Tuple[str, str], ...]  # (label, task) pairs
    tensors: Mapping[str, Tuple[int, ...]] = field(default_factory=dict)  # multi-valued features' shapes
    columns: Optional[Mapping[str, ColumnSpec]] = None  # a user's table: each kept column's kind
    names: Tuple[Tuple[str, str], ...] = ()  # a user's table: (original name, feature key)
    left_out: Mapping[str, str] = field(default_factory=dict)  # column key -> why it is not a feature
    na_values: Tuple[str, ...] = ()  # a user's missing-value tokens beyond the usual ones
    image: Optional[ImageInput] = None
    season: int = 0  # a user's series: each window is scaled by itself, by its seasonal naive error at this lag
    horizon: int = 0  # a user's series: the steps forecast (the serving graph has no target to count them)
    covariates: Tuple[str, ...] = ()  # a user's series: known-ahead features (lookback + horizon values each)
    calendar: str = ""  # a user's daily or weekly series: that frequency; calendar parts from ``next_date``

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(label for label, _ in self.targets)

    def to_dict(self) -> Dict[str, Any]:
        """The custom_config dict: JSON types only; a table's group only for a table, the image's
        only for images, the backup root only for the Trainer."""
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if (f.name in _TABLE_GROUP and self.columns is None) or (f.name in _ABSENT_WHEN_EMPTY and not value):
                continue
            out[f.name] = _plain(value)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls: Type[Spec], config: Mapping[str, Any]) -> Spec:
        # TFX's Vertex AI Trainer reads its own keys from the same custom_config
        config = {k: v for k, v in config.items() if not k.startswith(VERTEX_KEY_PREFIX)}
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - set(names))
        if unknown:
            raise SpecError(f"{cls.__name__}: unknown key(s) {', '.join(unknown)}; known: {', '.join(names)}")
        missing = sorted(n for n, f in names.items() if n not in config and f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING)
        if missing:
            raise SpecError(f"{cls.__name__}: missing key(s) {', '.join(missing)}")
        return cls(**{name: _typed(name, value) for name, value in config.items()})

    @classmethod
    def from_json(cls: Type[Spec], text: str) -> Spec:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class TrainSpec(TransformSpec):
    """What run_fn needs beyond the Transform's: the family, overrides, the data's size, transfer."""
    family: str = "dnn"
    hparams: Mapping[str, str] = field(default_factory=dict)  # --hparam overrides, as given
    rows: int = 0  # the table's rows (size-based defaults)
    pretrained: Mapping[str, Any] = field(default_factory=dict)  # the pretrained base, if any
    distill_from: str = ""  # the teacher's SavedModel dir, if any
    backup_root: str = ""  # where resumable training backups go (the Trainer's only)
    series_info: Mapping[str, Any] = field(default_factory=dict)  # a user's series: serving.codec.periods.SeriesInfo
    train_workers: int = 0  # processes training together (components.train_workers); 0: this one alone


@dataclass(frozen=True)
class TuneSpec(TrainSpec):
    """What tuner_fn needs beyond training's."""
    tuner: str = "random"
    max_trials: int = 6


_TABLE_GROUP = {"columns", "names", "left_out", "na_values"}
VERTEX_KEY_PREFIX = "ai_platform_"  # tfx.extensions.google_cloud_ai_platform's custom_config keys
_ABSENT_WHEN_EMPTY = {"image", "backup_root", "season", "horizon", "series_info", "covariates", "calendar",
                      "train_workers"}


def _plain(value: Any) -> Any:
    if isinstance(value, ColumnSpec):  # a table without text, or with words alone, keeps its cache key
        plain = {"kind": value.kind, "format": value.format}
        plain.update({"length": value.length} if value.length else {})
        plain.update({"ngrams": value.ngrams} if value.ngrams != 1 else {})
        plain.update({} if value.tfidf else {"tfidf": False})
        return plain
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _typed(name: str, value: Any) -> Any:
    """A JSON value back as the field's type (tuples, nested specs)."""
    if name == "targets" or name == "names":
        return tuple(tuple(pair) for pair in value)
    if name == "tensors":
        return {key: tuple(shape) for key, shape in value.items()}
    if name == "columns":
        return {key: ColumnSpec(**column) for key, column in value.items()}
    if name == "image":
        return ImageInput(value["feature"], int(value["size"]), tuple(value.get("augment", ())),
                          tuple(value.get("ignore", ())))
    if name in ("na_values", "covariates"):
        return tuple(value)
    return value
