"""Free-text columns in the Transform (so in the served graph): normalized, split into words, each
word an id in the column's own vocabulary, padded or cut to the column's token window.

Ids: 0 is padding (no word), 1..V the vocabulary's words by decreasing frequency, V+1 any other
word; the model embeds them (``components.models.text``). A missing value is no words at all.
"""
import tensorflow as tf
import tensorflow_transform as tft

TEXT_VOCABULARY_PREFIX = "text_"  # + the column's key: one vocabulary file per text column
TEXT_TOP_K = 20_000  # the most frequent words kept per column
TEXT_MIN_COUNT = 2  # a word seen once in training teaches nothing an OOV id would not
PADDING, TEXT_RESERVED_IDS = 0, 2  # padding and the OOV id around the vocabulary's own


def text_vocabulary(column: str) -> str:
    return TEXT_VOCABULARY_PREFIX + column


def words(text: tf.Tensor) -> tf.RaggedTensor:
    """[batch] text -> [batch, (words)]: lowercased; links one token; letters, digits, @, # and
    apostrophes kept inside words, anything else a separator."""
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"https?://\S+|www\.\S+", " url ")
    text = tf.strings.regex_replace(text, r"[^\p{L}\p{N}@#']+", " ")
    return tf.strings.split(text)


def token_window(length: int, ngrams: int) -> int:
    """The ids a text of ``length`` words becomes: its words, then its word pairs, ... up to ``ngrams``."""
    return sum(max(length - width + 1, 0) for width in range(1, ngrams + 1))


def text_ids(text: tf.Tensor, column: str, length: int, ngrams: int = 1) -> tf.Tensor:
    """[batch, 1] text (missing as "") -> [batch, token_window(length, ngrams)] int64 token ids (0 =
    padding): the first ``length`` words, then (``ngrams`` 2 or 3) the pairs and triples of those
    words, each an entry of the column's one vocabulary ("new york" beside "new" and "york"), then padding."""
    tokens = words(tf.reshape(text, [-1]))
    if ngrams > 1:
        cut = tokens[:, :length]
        tokens = tf.concat([cut] + [tf.strings.ngrams(cut, width, separator=" ") for width in range(2, ngrams + 1)],
                           axis=1)
        length = token_window(length, ngrams)
    ids = tft.compute_and_apply_vocabulary(tokens, top_k=TEXT_TOP_K, frequency_threshold=TEXT_MIN_COUNT,
                                           num_oov_buckets=1, vocab_filename=text_vocabulary(column))
    dense = (ids + 1).to_tensor(default_value=PADDING)[:, :length]
    padded = tf.pad(dense, [[0, 0], [0, length - tf.shape(dense)[1]]], constant_values=PADDING)
    return tf.reshape(padded, [-1, length])
