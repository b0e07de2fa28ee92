"""Naming of transformed features: the one place that maps raw names to the model's input names."""

TRANSFORMED_SUFFIX = "_xf"
LABEL_VOCABULARY = "label"  # vocabulary file of class names (multiclass, or binary string labels)


def transformed_name(raw_name: str) -> str:
    return raw_name + TRANSFORMED_SUFFIX


def raw_name(transformed: str) -> str:
    if not transformed.endswith(TRANSFORMED_SUFFIX):
        raise ValueError(f"'{transformed}' is not a transformed feature name")
    return transformed[: -len(TRANSFORMED_SUFFIX)]


def vocabulary_name(raw_feature: str) -> str:
    return "vocab_" + raw_feature
