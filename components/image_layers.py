"""Images in the graph: encoded bytes -> RGB pixels of one size, and the training-only augmentation.

The Transform decodes and resizes (so the served graph takes JPEG/PNG bytes); the exported pixel
signature and the TF Lite variants start from the decoded, resized pixels (0-255) and apply the
same affine scaling (``serving.codec.images.ImageInfo``). ``serving.codec.images`` does the host's half.
"""
from typing import Any, Sequence

import tensorflow as tf
import tf_keras as keras

from components.models.families import AUGMENTATIONS
from serving.codec.images import CHANNELS, ImageInfo


def decode_one(data: tf.Tensor, size: int) -> tf.Tensor:
    """One encoded image (JPEG, PNG, GIF's first frame, BMP) -> [size, size, 3] float32, 0-255.
    An empty or unreadable string gives a black image rather than failing the whole batch."""
    def decoded():
        # JPEG with the accurate integer DCT, as Pillow decodes it (the default differs by up to 5 levels)
        image = tf.cond(tf.io.is_jpeg(data),
                        lambda: tf.io.decode_jpeg(data, channels=CHANNELS, dct_method="INTEGER_ACCURATE"),
                        lambda: tf.io.decode_image(data, channels=CHANNELS, expand_animations=False, dtype=tf.uint8))
        image.set_shape([None, None, CHANNELS])
        return tf.image.resize(tf.cast(image, tf.float32), [size, size], method="bilinear", antialias=True)

    return tf.cond(tf.strings.length(data) > 0, decoded, lambda: tf.zeros([size, size, CHANNELS], tf.float32))


def decode_batch(encoded: tf.Tensor, size: int) -> tf.Tensor:
    """[batch] (or [batch, 1]) encoded images -> [batch, size, size, 3] float32 pixels, 0-255."""
    flat = tf.reshape(encoded, [-1])
    return tf.map_fn(lambda data: decode_one(data, size), flat,
                     fn_output_signature=tf.TensorSpec([size, size, CHANNELS], tf.float32))


def scale_pixels(pixels: tf.Tensor, info: ImageInfo) -> tf.Tensor:
    return tf.cast(pixels, tf.float32) * info.scale + info.offset


def augmentation(names: Sequence[str], seed: int = 42) -> Any:
    """Keras preprocessing layers, active in training only (identity when serving or converting)."""
    unknown = sorted(set(names) - set(AUGMENTATIONS))
    if unknown:
        raise ValueError(f"augmentation {', '.join(unknown)}: choose among {', '.join(AUGMENTATIONS)}")
    layers = []
    if "flip" in names:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed, name="augment_flip"))
    if "rotate" in names:
        layers.append(keras.layers.RandomRotation(0.08, fill_mode="reflect", seed=seed, name="augment_rotate"))
    if "zoom" in names:
        layers.append(keras.layers.RandomZoom(0.15, fill_mode="reflect", seed=seed, name="augment_zoom"))
    if "contrast" in names:
        layers.append(keras.layers.RandomContrast(0.2, seed=seed, name="augment_contrast"))
    return keras.Sequential(layers, name="augment") if layers else None
