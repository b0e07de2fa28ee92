"""Naming of transformed features and vocabularies: the one place that maps raw names to the
model's input names and to the Transform's vocabulary files."""

from serving.edge_runtime import PREDICTIONS  # noqa: F401 - the exported signatures' single output

TRANSFORMED_SUFFIX = "_xf"


def transformed_name(raw_name: str) -> str:
    return raw_name + TRANSFORMED_SUFFIX


def raw_name(transformed: str) -> str:
    if not transformed.endswith(TRANSFORMED_SUFFIX):
        raise ValueError(f"'{transformed}' is not a transformed feature name")
    return transformed[: -len(TRANSFORMED_SUFFIX)]


def vocabulary_name(raw_feature: str) -> str:
    return "vocab_" + raw_feature


def label_vocabulary(label: str) -> str:
    """Class names of a label (multiclass, or binary with string labels), by decreasing frequency."""
    return "label_" + label


# Forecast scaling, emitted by the Transform next to the features (not model inputs, hence the
# leading underscore) so the serving signature can give forecasts in the series' own units.
FORECAST_OFFSET, FORECAST_SCALE = "_forecast_offset", "_forecast_scale"
# A regression label's mean and standard deviation over the train split, emitted likewise: the model
# learns the standardized label (a loss of order 1 whatever the label's units) and the exported
# signatures answer in the label's own units.
LABEL_OFFSET, LABEL_SCALE = "_label_offset", "_label_scale"


def is_model_input(transformed: str, label_keys) -> bool:
    return transformed not in label_keys and not transformed.startswith("_")
