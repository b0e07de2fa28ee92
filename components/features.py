"""Naming of transformed features and vocabularies: the one place that maps raw names to the
model's input names and to the Transform's vocabulary files."""
from typing import Any, Dict, Iterable, List

from serving.edge_runtime import PREDICTIONS  # noqa: F401 - the exported signatures' single output

TRANSFORMED_SUFFIX = "_xf"


def transformed_name(raw_name: str) -> str:
    return raw_name + TRANSFORMED_SUFFIX


def raw_name(transformed: str) -> str:
    if not transformed.endswith(TRANSFORMED_SUFFIX):
        raise ValueError(f"'{transformed}' is not a transformed feature name")
    return transformed[: -len(TRANSFORMED_SUFFIX)]


# Every text feature's values in one vocabulary file, each as "<column>\x1f<value>": one TFT
# analyzer for all columns, where one per column cost ~1.1 s each of Beam stages (a 40-column table
# spent 60 s analysing 2,930 rows). A value's id is its place among its own column's values.
FEATURE_VOCABULARY = "vocab_features"
# A served request's missing cell of an integer column that was never missing in training (a required
# int64 feature: NaN has no int64 form); the Transform reads it as missing, as an absent value
MISSING_INTEGER = -(2 ** 63)
COLUMN_SEPARATOR = "\x1f"


def vocabulary_key(raw_feature: str) -> str:
    """What a column's values are prefixed with in the feature vocabulary."""
    if COLUMN_SEPARATOR in raw_feature:
        raise ValueError(f"column '{raw_feature}': its name holds the character \\x1f, which the feature "
                         "vocabulary uses to separate a column's name from its values; rename the column")
    return raw_feature + COLUMN_SEPARATOR


def vocabulary_column(token: bytes) -> bytes:
    """The column a feature-vocabulary entry belongs to (TFT's ``key_fn``: per-column top-k)."""
    return token.split(COLUMN_SEPARATOR.encode(), 1)[0]


def column_vocabularies(entries: Iterable[bytes]) -> Dict[str, List[bytes]]:
    """Each column's values in the feature vocabulary's order (decreasing frequency); a value's index
    in its column's list is the id the Transform gives it, the list's length the OOV id. The empty
    value (a missing cell) is left out: TFT leaves "" out of a vocabulary, so it shares the OOV id."""
    columns: Dict[str, List[bytes]] = {}
    separator = COLUMN_SEPARATOR.encode()
    for entry in entries:
        column, _, value = entry.partition(separator)
        values = columns.setdefault(column.decode(), [])
        if value:
            values.append(value)
    return columns


def feature_vocabularies(tft_output: Any) -> Dict[str, List[bytes]]:
    """Each text column's values by id, from a Transform's output (a ``tft.TFTransformOutput``);
    empty when the features have no text column (the file is then not written)."""
    path = tft_output.vocabulary_file_by_name(FEATURE_VOCABULARY)
    return column_vocabularies(read_vocabulary(path)) if path else {}


def read_vocabulary(path: str) -> List[bytes]:
    """A text vocabulary file's entries, read as ``TFTransformOutput.vocabulary_by_name`` reads them."""
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "rb") as f:
        return [line.rstrip(b"\n") for line in f]


def label_vocabulary(label: str) -> str:
    """Class names of a label (multiclass, or binary with string labels), by decreasing frequency."""
    return "label_" + label


# Forecast scaling, emitted by the Transform next to the features (not model inputs, hence the
# leading underscore) so the serving signature can give forecasts in the series' own units.
FORECAST_OFFSET, FORECAST_SCALE = "_forecast_offset", "_forecast_scale"
# Which of components.forecast_bases.BASE_NAMES the Transform chose (the same on every row), for the
# Trainer to report.
FORECAST_BASE = "_forecast_base"
# A regression label's mean and standard deviation over the train split, emitted likewise: the model
# learns the standardized label (a loss of order 1 whatever the label's units) and the exported
# signatures answer in the label's own units.
LABEL_OFFSET, LABEL_SCALE = "_label_offset", "_label_scale"


# A user's series with covariates or calendar parts: the Transform's [horizon, parts] input of what
# is known about each forecast step (its calendar parts, its covariates' values), read by the model
# beside the window (components.models.base.join_known_ahead).
KNOWN_AHEAD = "known_ahead"

# not features
INTERNAL_OUTPUTS = frozenset({LABEL_OFFSET, LABEL_SCALE, FORECAST_OFFSET, FORECAST_SCALE, FORECAST_BASE})


def is_model_input(transformed: str, label_keys) -> bool:
    """A Transform output the model reads: not a label, not one of the Transform's own constants.
    (A column named ``1960`` has the key ``_1960``: a feature like any other.)"""
    return transformed not in label_keys and transformed not in INTERNAL_OUTPUTS
