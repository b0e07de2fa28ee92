"""Free-text columns in the Transform (so in the served graph): normalized, split into words, each
word an id in the column's own vocabulary, padded or cut to the column's token window.

Ids: 0 is padding (no word), 1..V the vocabulary's words by decreasing frequency, V+1 any other
word; the model embeds them (``components.models.text``). A missing value is no words at all.

Beside the ids, for the ``tfidf`` text learner, each position's TF-IDF weight (``tfidf_weights``): it
sums the words' vectors with them, so a linear model over the text is TF-IDF + logistic regression
learnt. The other learners never read them, and their Transform leaves them out.
"""
from typing import Optional, Tuple

import tensorflow as tf
import tensorflow_transform as tft

TEXT_VOCABULARY_PREFIX = "text_"  # + the column's key: one vocabulary file per text column
TEXT_TOP_K = 20_000  # the most frequent words kept per column
TEXT_MIN_COUNT = 2  # a word seen once in training teaches nothing an OOV id would not
PADDING, TEXT_RESERVED_IDS = 0, 2  # padding and the OOV id around the vocabulary's own
TFIDF_SUFFIX = "__tfidf"  # a text column's key + this: the Transform output of its ids' TF-IDF weights


def text_vocabulary(column: str) -> str:
    return TEXT_VOCABULARY_PREFIX + column


def tfidf_column(column: str) -> str:
    """The key of the Transform output that carries ``column``'s TF-IDF weights."""
    return column + TFIDF_SUFFIX


def words(text: tf.Tensor) -> tf.RaggedTensor:
    """[batch] text -> [batch, (words)]: lowercased; links one token; letters, digits, @, # and
    apostrophes kept inside words, anything else a separator."""
    text = tf.strings.lower(tf.strings.regex_replace(text, "\\x00", " "), encoding="utf-8")  # lower stops at a NUL
    text = tf.strings.regex_replace(text, r"https?://\S+|www\.\S+", " url ")
    text = tf.strings.regex_replace(text, r"[^\p{L}\p{N}@#']+", " ")
    return tf.strings.split(text)


def token_window(length: int, ngrams: int) -> int:
    """The ids a text of ``length`` words becomes: its words, then its word pairs, ... up to ``ngrams``."""
    return sum(max(length - width + 1, 0) for width in range(1, ngrams + 1))


def tfidf_weights(ids: tf.RaggedTensor, known: tf.Tensor) -> tf.RaggedTensor:
    """[batch, (tokens)] vocabulary ids (0-based; ``known``: the vocabulary's size, so an id from
    there on is an unknown word) -> each token's weight: a text's TF-IDF vector (sublinear tf,
    1 + ln(count), times the smoothed idf, 1 + ln((texts + 1) / (texts with the term + 1)),
    L2-normalized: scikit-learn's TfidfVectorizer with sublinear_tf, which ignores unknown words too)
    shared among the term's repeats, so a weighted sum over tokens is that vector's product.
    Document frequencies are a TFT analyzer over the training texts."""
    terms = TEXT_TOP_K + 1
    rows, flat = ids.value_rowids(), ids.flat_values
    unique, where, counts = tf.unique_with_counts(rows * terms + flat, out_idx=tf.int64)
    term, row = unique % terms, unique // terms  # each (text, term) pair once
    present = tf.math.bincount(tf.cast(term, tf.int32), minlength=terms, maxlength=terms, dtype=tf.float32)
    with_term = tft.sum(present[tf.newaxis, :], reduce_instance_dims=False)
    texts = tft.sum(tf.cast(tf.reshape(ids.nrows(), [1]), tf.float32))
    idf = 1.0 + tf.math.log((texts + 1.0) / (with_term + 1.0))
    counts = tf.cast(counts, tf.float32)
    values = (1.0 + tf.math.log(counts)) * tf.gather(idf, term)
    values = tf.where(term < tf.cast(known, tf.int64), values, 0.0)
    norms = tf.sqrt(tf.math.unsorted_segment_sum(tf.square(values), row, ids.nrows()))
    shares = tf.math.divide_no_nan(values / counts, tf.gather(norms, row))
    return ids.with_flat_values(tf.gather(shares, where))


def text_ids(text: tf.Tensor, column: str, length: int, ngrams: int = 1,
             tfidf: bool = True) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
    """[batch, 1] text (missing as "") -> ([batch, token_window(length, ngrams)] int64 token ids (0 =
    padding): the first ``length`` words, then (``ngrams`` 2 or 3) the pairs and triples of those
    words, each an entry of the column's one vocabulary ("new york" beside "new" and "york"), then
    padding; with ``tfidf`` the same shape of float TF-IDF weights, 0 at padding, else None)."""
    tokens = words(tf.reshape(text, [-1]))
    if ngrams > 1:
        cut = tokens[:, :length]
        tokens = tf.concat([cut] + [tf.strings.ngrams(cut, width, separator=" ") for width in range(2, ngrams + 1)],
                           axis=1)
        length = token_window(length, ngrams)
    ids = tft.compute_and_apply_vocabulary(tokens, top_k=TEXT_TOP_K, frequency_threshold=TEXT_MIN_COUNT,
                                           num_oov_buckets=1, vocab_filename=text_vocabulary(column))
    ids = ids[:, :length]
    if not tfidf:
        return _padded(ids + 1, length, PADDING), None
    known = tft.experimental.get_vocabulary_size_by_name(text_vocabulary(column))
    return _padded(ids + 1, length, PADDING), _padded(tfidf_weights(ids, known), length, 0.0)


def _padded(tokens: tf.RaggedTensor, length: int, padding) -> tf.Tensor:
    dense = tokens.to_tensor(default_value=padding)
    dense = tf.pad(dense, [[0, 0], [0, length - tf.shape(dense)[1]]], constant_values=padding)
    return tf.reshape(dense, [-1, length])
