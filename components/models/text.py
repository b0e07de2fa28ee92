"""The text stem: a text column's word ids [words] -> one vector, beside the tabular stem's parts.

An embedding of each word (padding masked), then a learner chosen by ``text_learner``: ``pool``,
the mean of the words' vectors (a bag of words that learns; a fastText-like linear model under the
dnn's depth 0), ``conv`` (1D convolutions over word windows, max-pooled: phrases) or ``lstm`` (a
bidirectional LSTM: order). ``text_dim``: the embedding's width.
"""
from typing import Any, Mapping

import tf_keras as keras

TEXT_LEARNERS = ("pool", "conv", "lstm")


def text_stem(ids: Any, name: str, size: int, hp: Mapping[str, Any]) -> Any:
    """``hp``: the family's resolved meta-parameters (their defaults: components.models.families)."""
    learner, dim = hp["text_learner"], int(hp["text_dim"])
    if learner not in TEXT_LEARNERS:
        raise ValueError(f"text_learner '{learner}': choose one of {', '.join(TEXT_LEARNERS)}")
    embedded = keras.layers.Embedding(size, dim, mask_zero=learner != "conv", name=f"embed_{name}")(ids)
    if learner == "pool":
        return keras.layers.GlobalAveragePooling1D(name=f"pool_{name}")(embedded)
    if learner == "lstm":
        return keras.layers.Bidirectional(keras.layers.LSTM(dim), name=f"lstm_{name}")(embedded)
    x = keras.layers.Conv1D(dim * 2, 3, padding="same", activation="relu", name=f"conv_{name}")(embedded)
    return keras.layers.GlobalMaxPooling1D(name=f"maxpool_{name}")(x)
