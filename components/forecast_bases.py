"""A user's series: the base forecast each window's model corrects, chosen by the Transform.

Each window offers ten bases: the window's seasonal profile (each position's mean deviation from its
season's mean) on three levels (the last season's mean; that mean carried on by the window's drift;
the seasons' means smoothed exponentially, as simple exponential smoothing does), and, with no season,
the last value (the naive forecast) and the last value carried on by the window's drift; each in the
series' units and on its logarithms (a season that grows with the level, as in AirPassengers; a window with a
value <= 0 takes the units' form there). The Transform keeps the one whose error over the train
windows is lowest (an analyzer, so the choice is a constant of the served graph): a short or noisy
series starts from a sound forecast of its own kind, and the model learns what that base misses.
Measured per series in docs/models.md.
"""
from typing import Callable, Tuple

import tensorflow as tf

SMOOTHING = 0.5  # the smoothed level's weight on the newest season
LEVELS = ("last season", "drift", "smoothed", "last value", "last value and its drift")
BASE_NAMES = LEVELS + tuple(f"{level} on logs" for level in LEVELS)  # candidate_bases' order


def _level_forms(values: tf.Tensor, lag: int, horizon: int) -> tf.Tensor:
    """[batch, len(LEVELS), horizon]: the seasonal profile on each level, then the last value
    (the naive forecast) and the last value carried on by the window's drift, with no season: a
    daily series of users or prices has no weekly profile, and its nearest future is where it is now."""
    length = values.shape[1]
    count = length // lag
    seasons = tf.reshape(values[:, length - count * lag:], [-1, count, lag])
    means = tf.reduce_mean(seasons, axis=2)  # [batch, count]
    profile = tf.gather(tf.reduce_mean(seasons - means[:, :, tf.newaxis], axis=1),
                        [step % lag for step in range(horizon)], axis=1)
    last = means[:, -1:]
    # whole seasons ahead: the profile already holds the drift within a season
    ahead = tf.constant([[lag * (step // lag + 1) for step in range(horizon)]], tf.float32)
    slope = (last - means[:, :1]) / max((count - 1) * lag, 1)
    weights = [(1 - SMOOTHING) ** (count - 1)] + [SMOOTHING * (1 - SMOOTHING) ** (count - 1 - i)
                                                  for i in range(1, count)]
    smoothed = tf.reduce_sum(means * tf.constant(weights, tf.float32), axis=1, keepdims=True)
    now = values[:, -1:]
    steps = tf.constant([[step + 1.0 for step in range(horizon)]], tf.float32)
    walk = (now - values[:, :1]) / (length - 1)
    return tf.stack([last + profile, last + slope * ahead + profile, smoothed + profile,
                     now + tf.zeros_like(profile), now + walk * steps], axis=1)


def _on_logs(values: tf.Tensor, lag: int, horizon: int, units: tf.Tensor) -> tf.Tensor:
    """[batch, len(LEVELS), horizon]: the level forms on the window's logarithms, back in its units; a
    window with a value <= 0 keeps ``units`` (its forms in units)."""
    positive = tf.reduce_all(values > 0, axis=1)[:, tf.newaxis, tf.newaxis]
    logs = tf.exp(_level_forms(tf.math.log(tf.maximum(values, 1e-30)), lag, horizon))
    return tf.where(positive, logs, units)


def candidate_bases(values: tf.Tensor, lag: int, horizon: int) -> tf.Tensor:
    """[batch, len(BASE_NAMES), horizon]: every base of each [batch, length] window."""
    units = _level_forms(values, lag, horizon)
    return tf.concat([units, _on_logs(values, lag, horizon, units)], axis=1)


def one_base(values: tf.Tensor, lag: int, horizon: int, index: int) -> tf.Tensor:
    """[batch, horizon]: ``candidate_bases(values, lag, horizon)[:, index]`` (the edge model, whose base
    the Transform fixed): the forms on logs are computed only for a base on logs."""
    units = _level_forms(values, lag, horizon)
    forms = units if index < len(LEVELS) else _on_logs(values, lag, horizon, units)
    return forms[:, index % len(LEVELS)]


def base_errors(candidates: tf.Tensor, target: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
    """[batch, len(BASE_NAMES)]: each base's mean absolute error on the window's scale."""
    return tf.reduce_mean(tf.abs(target[:, tf.newaxis, :] - candidates), axis=2) / scale


def chosen_base(candidates: tf.Tensor, errors: tf.Tensor,
                over_windows: Callable[[tf.Tensor], tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor]:
    """([batch, horizon], its index in BASE_NAMES): the base whose errors, averaged by
    ``over_windows`` ([batch, bases] -> [bases]; tft.mean over the train split in the pipeline), are
    lowest."""
    index = tf.argmin(over_windows(errors))
    return tf.gather(candidates, index, axis=1), index
