"""The text stem: a text column's word ids [words] -> one vector, beside the tabular stem's parts.

An embedding of each word (padding masked), then a learner chosen by ``text_learner``: ``tfidf``,
the words' vectors summed with the Transform's TF-IDF weights (a learnt bag of words: the head's
linear part over it is TF-IDF + logistic regression, the baseline users trust), ``pool``, their plain
mean (fastText-like), ``conv`` (1D convolutions over word windows, max-pooled: phrases) or ``lstm``
(a bidirectional LSTM: order). ``text_dim``: the embedding's width.

A text with no words (an empty cell, or only emoji and punctuation) is all padding: ``pool`` gives
it a vector of zeros (Keras' masked average divides 0 by 0 there, and one such row turns the loss
into NaN), ``lstm`` its initial state, ``conv`` the padding's own embedding.
"""
from typing import Any, Mapping, Optional

import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="mlops")
class MaskedMean(keras.layers.Layer):
    """[batch, words, dim] -> [batch, dim]: the mean of the unmasked words' vectors; zeros where
    every word is masked. Registered: the Trainer saves without traced layer calls, so a Keras
    reload rebuilds it by name."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return tf.reduce_mean(inputs, axis=1)
        weights = tf.cast(mask, inputs.dtype)[:, :, tf.newaxis]
        return tf.math.divide_no_nan(tf.reduce_sum(inputs * weights, axis=1), tf.reduce_sum(weights, axis=1))

    def compute_mask(self, inputs, mask=None):
        return None  # one vector a row: nothing left to mask


@keras.utils.register_keras_serializable(package="mlops")
class WeightedSum(keras.layers.Layer):
    """([batch, words, dim], [batch, words]) -> [batch, dim]: the words' vectors summed with their
    weights (0 at padding, so a text with no words is zeros)."""

    def call(self, inputs):
        vectors, weights = inputs
        return tf.reduce_sum(vectors * weights[:, :, tf.newaxis], axis=1)

    def compute_mask(self, inputs, mask=None):
        return None


def text_stem(ids: Any, weights: Optional[Any], name: str, size: int, hp: Mapping[str, Any],
              penalty: Optional[keras.regularizers.Regularizer] = None) -> Any:
    """``weights``: the ids' TF-IDF weights (None where the Transform has none); ``hp``: the family's
    resolved meta-parameters (their defaults and accepted learners: components.models.families);
    ``penalty``: the family's weight penalty, for the word vectors too: they are most of the model's
    weights, and TF-IDF + logistic regression without its L2 term overfits the same way."""
    learner, dim = hp["text_learner"], int(hp["text_dim"])
    if learner == "tfidf":
        if weights is None:
            raise ValueError(f"text_learner 'tfidf': the Transform gave '{name}' no TF-IDF weights; "
                             "choose pool, conv or lstm")
        embedded = keras.layers.Embedding(size, dim, embeddings_regularizer=penalty, name=f"embed_{name}")(ids)
        return WeightedSum(name=f"tfidf_{name}")([embedded, weights])
    embedded = keras.layers.Embedding(size, dim, mask_zero=learner != "conv", embeddings_regularizer=penalty,
                                      name=f"embed_{name}")(ids)
    if learner == "pool":
        return MaskedMean(name=f"pool_{name}")(embedded)
    if learner == "lstm":
        return keras.layers.Bidirectional(keras.layers.LSTM(dim), name=f"lstm_{name}")(embedded)
    x = keras.layers.Conv1D(dim * 2, 3, padding="same", activation="relu", name=f"conv_{name}")(embedded)
    return keras.layers.GlobalMaxPooling1D(name=f"maxpool_{name}")(x)
