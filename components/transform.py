"""The Transform step's preprocessing_fn: z-score numerics, vocabularies for strings, fill missing,
images and sequences scaled to [0, 1] and shaped, labels encoded per target task.

Referenced by TFX as ``components.transform.preprocessing_fn``; ``custom_config`` is a
``components.specs.TransformSpec`` (``PipelineConfig.transform_spec()``), parsed once at the top.
"""
import functools
import math
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import tensorflow as tf
import tensorflow_transform as tft

from components import forecast_bases, image_layers
from components.features import (
    FEATURE_VOCABULARY,
    FORECAST_BASE,
    FORECAST_OFFSET,
    FORECAST_SCALE,
    KNOWN_AHEAD,
    LABEL_OFFSET,
    LABEL_SCALE,
    MISSING_INTEGER,
    column_vocabularies,
    label_vocabulary,
    read_vocabulary,
    transformed_name,
    vocabulary_column,
    vocabulary_key,
)
from components.specs import ColumnSpec, TransformSpec
from components.tasks import get_task
from components.text_features import text_ids, tfidf_column
from serving.codec.columns import DATE_PARTS, FALSE_TOKENS, MDY_PATTERN, NA_TOKENS, TRUE_TOKENS, YMD_PATTERN
from serving.codec.images import ImageInfo
from serving.codec.periods import NEXT_DATE_INPUT, seasonal_lag

OOV_BUCKETS = 1
VOCABULARY_TOP_K = 10_000  # the most frequent values of each text column; the rest share the OOV bucket
Tensorish = Union[tf.Tensor, tf.SparseTensor]


def fill_missing(x: Tensorish, default: Any) -> tf.Tensor:
    """A [batch, 1] dense tensor: a feature with missing values arrives as a SparseTensor."""
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]),
            default_value=tf.constant(default, dtype=x.dtype),
        )
    return tf.reshape(x, [-1, 1])


def encode_label(label: Tensorish, encoding: str, name: str) -> tf.Tensor:
    if encoding == "float":
        return tf.cast(fill_missing(label, 0), tf.float32)
    if encoding == "binary" and label.dtype.is_integer:
        return tf.cast(fill_missing(label, 0), tf.int64)
    # Class names, in decreasing frequency: index 0 is the most frequent class.
    if label.dtype == tf.string:
        as_text = fill_missing(label, "")
    else:
        as_text = tf.strings.as_string(fill_missing(label, 0))
    return tft.compute_and_apply_vocabulary(as_text, vocab_filename=label_vocabulary(name))


def scale_tensor(x: tf.Tensor, shape: list, name: str) -> tf.Tensor:
    """A multi-valued feature (image pixels, a sequence window) scaled to [0, 1] with one min/max
    over all its values (so relative intensities stay), reshaped to [batch, *shape]."""
    scaled = tft.scale_to_0_1(tf.cast(x, tf.float32), elementwise=False, name=f"scale_{name}")
    return tf.reshape(scaled, [-1, *shape])


def forecast_features(inputs: Mapping[str, Tensorish], window: str, shape: list, target: str) -> Dict[str, tf.Tensor]:
    """Window and target scaled by one min/max (the window's, over the train split), so the ratio of
    errors is the same as in the series' units; the scale goes along to undo it at serving."""
    values = tf.cast(inputs[window], tf.float32)
    low, high = tft.min(values), tft.max(values)
    span = tf.maximum(high - low, 1e-6)
    ones = tf.ones_like(values[:, :1])
    return {
        transformed_name(window): tf.reshape((values - low) / span, [-1, *shape]),
        transformed_name(target): (tf.cast(inputs[target], tf.float32) - low) / span,
        FORECAST_OFFSET: ones * low,
        FORECAST_SCALE: ones * span,
    }


def _train_mean(errors: tf.Tensor) -> tf.Tensor:
    return tft.mean(errors, reduce_instance_dims=False, name="forecast_base_errors")


def window_level_and_scale(values: tf.Tensor, lag: int) -> Tuple[tf.Tensor, tf.Tensor]:
    """([batch, 1] mean, [batch, 1] scale) of each [batch, length] window: the in-sample MAE of its
    seasonal naive forecast, floored at a tenth of its standard deviation (the edge model computes
    the same, components.edge_series)."""
    level = tf.reduce_mean(values, axis=1, keepdims=True)
    naive_error = tf.reduce_mean(tf.abs(values[:, lag:] - values[:, :-lag]), axis=1, keepdims=True)
    spread = tf.math.reduce_std(values, axis=1, keepdims=True)
    return level, tf.maximum(naive_error, tf.maximum(0.1 * spread, 1e-6 * tf.abs(level) + 1e-12))


def window_scaled_features(inputs: Mapping[str, Tensorish], window: str, shape: list, target: str,
                           season: int, horizon: int,
                           over_windows: Callable[[tf.Tensor], tf.Tensor] = _train_mean) -> Dict[str, tf.Tensor]:
    """Each window scaled by itself, so one model serves series of any size: less its mean, over
    the in-sample MAE of its seasonal naive forecast (lag ``season`` when the window holds two
    seasons, else 1: serving.codec.periods.seasonal_lag, as MASE's scale). The target is what the base
    forecast the train windows favour (components.forecast_bases) misses, on the same scale: the
    model learns a correction to a sound forecast (a few windows of a short series do not have to
    teach it seasonality or trend), and a scaled target's absolute error is still the forecast's
    error over the window's seasonal naive error: a MASE with the window as the history, so the
    Evaluator's MAE gates on "MASE < 1". The scale is floored at a tenth of the window's standard
    deviation, so a nearly periodic window does not blow its values up."""
    values = tf.cast(inputs[window], tf.float32)
    lag = seasonal_lag(season, shape[0])
    level, scale = window_level_and_scale(values, lag)
    targets = tf.cast(inputs[target], tf.float32)
    candidates = forecast_bases.candidate_bases(values, lag, horizon)
    base, chosen = forecast_bases.chosen_base(candidates, forecast_bases.base_errors(candidates, targets, scale),
                                              over_windows)
    return {
        transformed_name(window): tf.reshape((values - level) / scale, [-1, *shape]),
        transformed_name(target): (targets - base) / scale,
        FORECAST_OFFSET: base,  # [batch, horizon]: the forecast is base + prediction x scale
        FORECAST_SCALE: scale,
        FORECAST_BASE: tf.zeros_like(scale, tf.int64) + chosen,
    }


def days_since_epoch(iso_dates: tf.Tensor) -> tf.Tensor:
    """[batch] YYYY-MM-DD strings -> int64 days since 1970-01-01."""
    year, month, day = (tf.strings.to_number(tf.strings.substr(iso_dates, start, length), tf.int64)
                        for start, length in ((0, 4), (5, 2), (8, 2)))
    return _days_from_civil(year, month, day)


def calendar_parts(next_date: Tensorish, horizon: int, frequency: str) -> tf.Tensor:
    """[batch, horizon, parts]: for each forecast step, its place in the year (two harmonics of
    sine and cosine) and, for a daily series, its weekday (one-hot)."""
    return calendar_parts_of_days(tf.cast(days_since_epoch(tf.reshape(next_date, [-1])), tf.float32),
                                  horizon, frequency)


def calendar_parts_of_days(first: tf.Tensor, horizon: int, frequency: str) -> tf.Tensor:
    """calendar_parts from [batch] float32 days since 1970-01-01 of the first forecast step (whole
    days are exact in float32 for 45,000 years); the edge model's host gives the days, as TF Lite's
    builtins do not parse strings."""
    step = 7.0 if frequency == "weekly" else 1.0
    days = first[:, tf.newaxis] + tf.range(horizon, dtype=tf.float32)[tf.newaxis, :] * step  # [batch, horizon]
    angle = 2 * math.pi * tf.math.floormod(days, 146097.0) / 365.2425  # the year's fraction, as an angle
    parts = [tf.sin(angle), tf.cos(angle), tf.sin(2 * angle), tf.cos(2 * angle)]
    year_parts = tf.stack(parts, axis=2)
    if frequency != "daily":
        return year_parts
    weekday = tf.one_hot(tf.cast(tf.math.floormod(days + 3.0, 7.0), tf.int32), 7)  # 1970-01-01 was a Thursday
    return tf.concat([year_parts, weekday], axis=2)


def covariate_moves(values: tf.Tensor, lookback: int) -> tf.Tensor:
    """[batch, lookback + horizon]: a covariate less its mean over the window's points."""
    return values - tf.reduce_mean(values[:, :lookback], axis=1, keepdims=True)


def known_ahead_features(inputs: Mapping[str, Tensorish], config: TransformSpec,
                         lookback: int) -> Tuple[Optional[tf.Tensor], tf.Tensor]:
    """([batch, lookback, covariates] or None, [batch, horizon, parts]): each covariate less its
    mean over the window, then standardized over the train split (its window part goes beside the
    window's values, its horizon part to the forecast steps), and the steps' calendar parts. The
    window's values are taken relative to its own level; so are the covariates: a covariate that
    holds still (a law in force before and after) says nothing, one that moves (a promotion ahead)
    says how far, whatever its level was in the training years."""
    past, ahead = None, []
    if config.covariates:
        scaled = []
        for key in config.covariates:
            moved = covariate_moves(tf.cast(inputs[key], tf.float32), lookback)
            # a covariate that never moves within the train windows (a law passed after them) is 0,
            # not its raw change: the model never learned what its change does
            scaled.append(tf.math.divide_no_nan(moved - tft.mean(moved), tf.sqrt(tft.var(moved))))
        stacked = tf.stack(scaled, axis=2)  # [batch, lookback + horizon, covariates]
        past, ahead = stacked[:, :lookback, :], [stacked[:, lookback:, :]]
    if config.calendar:
        ahead.append(calendar_parts(inputs[NEXT_DATE_INPUT], config.horizon, config.calendar))
    return past, tf.concat(ahead, axis=2)


def series_features(inputs: Mapping[str, Tensorish], config: TransformSpec) -> Dict[str, tf.Tensor]:
    """A user's series: the window scaled by itself, with its known-ahead features if it has any."""
    (window, shape), = config.tensors.items()
    (target, _), = config.targets
    outputs = window_scaled_features(inputs, window, list(shape), target, config.season, config.horizon)
    if config.covariates or config.calendar:
        past, ahead = known_ahead_features(inputs, config, shape[0])
        if past is not None:
            outputs[transformed_name(window)] = tf.concat([outputs[transformed_name(window)], past], axis=2)
        outputs[transformed_name(KNOWN_AHEAD)] = ahead
    return outputs


def clean_text(x: tf.Tensor, na_tokens) -> tf.Tensor:
    """Trimmed text with every missing-value token as "" (the staged copy's missing cell)."""
    x = tf.strings.strip(x)
    missing = tf.reduce_any(tf.equal(tf.expand_dims(x, -1), tf.constant(list(na_tokens))), axis=-1)
    return tf.where(missing, tf.constant(""), x)


def boolean_text(x: tf.Tensor) -> tf.Tensor:
    """yes/no, y/n, t/f, true/false in any case -> "true" / "false"; anything else "" (missing)."""
    lowered = tf.strings.lower(x)
    is_true = tf.reduce_any(tf.equal(tf.expand_dims(lowered, -1), tf.constant(list(TRUE_TOKENS))), axis=-1)
    is_false = tf.reduce_any(tf.equal(tf.expand_dims(lowered, -1), tf.constant(list(FALSE_TOKENS))), axis=-1)
    return tf.where(is_true, tf.constant("true"), tf.where(is_false, tf.constant("false"), tf.constant("")))


def image_features(encoded: Tensorish, size: int) -> tf.Tensor:
    """Encoded image bytes -> [batch, size, size, 3] floats as the model takes them (in the served
    graph too, so TF Serving's clients send JPEG/PNG bytes)."""
    pixels = image_layers.decode_batch(tf.reshape(fill_missing(encoded, ""), [-1]), size)
    return image_layers.scale_pixels(pixels, ImageInfo(size=size))


def _days_from_civil(year: tf.Tensor, month: tf.Tensor, day: tf.Tensor) -> tf.Tensor:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm), int64."""
    year = year - tf.cast(month <= 2, tf.int64)
    era = tf.math.floordiv(year, 400)
    yoe = year - era * 400
    mp = tf.math.floormod(month + 9, 12)
    doy = tf.math.floordiv(153 * mp + 2, 5) + day - 1
    doe = yoe * 365 + tf.math.floordiv(yoe, 4) - tf.math.floordiv(yoe, 100) + doy
    return era * 146097 + doe - 719468


def _days_in_month(year: tf.Tensor, month: tf.Tensor) -> tf.Tensor:
    """The days of a month (1-12) of a year, int64."""
    december = tf.cast(tf.equal(month, 12), tf.int64)
    return _days_from_civil(year + december, month % 12 + 1, tf.ones_like(month)) - \
        _days_from_civil(year, month, tf.ones_like(month))


def date_parts(x: tf.Tensor, date_format: str) -> Dict[str, tf.Tensor]:
    """Year, month, day of week (Monday 0), day of year and hour of a date-time column, as floats
    (NaN where the cell is missing or unreadable). Formats: iso (YYYY-MM-DD[THH:MM[:SS]]),
    ymd_slash (YYYY/MM/DD [HH:MM]), mdy_slash (MM/DD/YYYY [HH:MM]) or unix (seconds)."""
    if date_format == "unix" or x.dtype != tf.string:
        seconds = tf.cast(x, tf.float64) if x.dtype != tf.string else tf.strings.to_number(x, tf.float64)
        days = tf.cast(tf.math.floor(seconds / 86400.0), tf.int64)
        hour = tf.math.floormod(tf.cast(tf.math.floor(seconds / 3600.0), tf.int64), 24)
        z = days + 719468  # civil_from_days
        era = tf.math.floordiv(z, 146097)
        doe = z - era * 146097
        yoe = tf.math.floordiv(doe - tf.math.floordiv(doe, 1460) + tf.math.floordiv(doe, 36524)
                               - tf.math.floordiv(doe, 146096), 365)
        doy = doe - (365 * yoe + tf.math.floordiv(yoe, 4) - tf.math.floordiv(yoe, 100))
        mp = tf.math.floordiv(5 * doy + 2, 153)
        day = doy - tf.math.floordiv(153 * mp + 2, 5) + 1
        month = tf.where(mp < 10, mp + 3, mp - 9)
        year = yoe + era * 400 + tf.cast(month <= 2, tf.int64)
        valid = tf.math.is_finite(seconds)
    else:
        text = tf.strings.strip(x)
        pattern, order = (MDY_PATTERN, (3, 1, 2, 4)) if date_format == "mdy_slash" else (YMD_PATTERN, (1, 2, 3, 4))
        valid = tf.strings.regex_full_match(text, pattern)
        fields = [tf.strings.regex_replace(text, pattern, rf"\{i}") for i in order]
        year, month, day = (tf.strings.to_number(tf.where(valid, f, "0"), tf.int64) for f in fields[:3])
        hour_text = fields[3]
        hour = tf.strings.to_number(tf.where(valid & (tf.strings.length(hour_text) > 0), hour_text, "0"), tf.int64)
        valid = valid & (month >= 1) & (month <= 12)
        month = tf.where(valid, month, tf.ones_like(month))
        valid = valid & (day >= 1) & (day <= _days_in_month(year, month)) & (hour <= 23)  # 2014-13-45: missing
        day = tf.where(valid, day, tf.ones_like(day))
        days = _days_from_civil(year, month, day)
    day_of_week = tf.math.floormod(days + 3, 7)  # 1970-01-01 was a Thursday (3 with Monday 0)
    day_of_year = days - _days_from_civil(year, tf.ones_like(month), tf.ones_like(day)) + 1
    nan = tf.constant(float("nan"), tf.float32)
    values = (year, month, day_of_week, day_of_year, hour)
    return {name: tf.where(valid, tf.cast(value, tf.float32), nan) for name, value in zip(DATE_PARTS, values)}


def z_scores(numbers: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Each [batch, 1] float (NaN where missing or unreadable) as a z-score over its finite values,
    a NaN becoming the mean (z = 0). One elementwise analyzer for all columns: TFT packs combiners,
    but each analyzer still adds Beam stages."""
    if not numbers:
        return {}
    stacked = tf.concat(list(numbers.values()), axis=1)
    indices = tf.where(tf.math.is_finite(stacked))
    present = tf.SparseTensor(indices, tf.gather_nd(stacked, indices), tf.shape(stacked, out_type=tf.int64))
    scaled = tf.sparse.to_dense(tft.scale_to_z_score(present, elementwise=True, name="zscore"), default_value=0.0)
    return dict(zip(numbers, tf.split(scaled, len(numbers), axis=1)))  # one op, not a slice per column


def _column_lookup(column: str, parsed: Dict[str, Dict[str, list]], text: tf.Tensor,
                   vocabulary_path: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """``apply_vocabulary``'s lookup_fn: a value's index among its column's values in the feature
    vocabulary, the column's size for anything else. The table is built from the written vocabulary
    when TFT traces the transform graph it saves (the path is then a concrete tensor), so the saved
    graph holds it as constants; ``parsed`` holds the file's columns by path, read once per trace for
    all columns. In an analysis phase's trace (a symbolic path) no analyzer reads these ids, and
    TFT's own table would not resolve either; zeros stand in."""
    if not hasattr(vocabulary_path, "numpy"):
        return tf.zeros_like(text, tf.int64), tf.constant(OOV_BUCKETS, tf.int64)
    with tf.init_scope():
        path = vocabulary_path.numpy().decode()
        if path not in parsed:
            parsed[path] = column_vocabularies(read_vocabulary(path))
        values = parsed[path].get(column, [])
        keys = tf.constant(values or [b""], tf.string)  # a table needs a key; "" is never in one
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, tf.range(tf.size(keys, out_type=tf.int64))),
            default_value=len(values))
    return table.lookup(text), tf.constant(len(values) + OOV_BUCKETS, tf.int64)


def vocabulary_ids(texts: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Each [batch, 1] text column (missing as "") as ids into its values by decreasing frequency,
    at most VOCABULARY_TOP_K of them, the rest (and "") the OOV id. One vocabulary analyzer for all
    columns (components.features.FEATURE_VOCABULARY); TFT's coverage arm keeps each column's own
    top k (its global arm, top 1, adds nothing: the most frequent value overall leads its column)."""
    if not texts:
        return {}
    keyed = tf.concat([tf.strings.join([vocabulary_key(name), text]) for name, text in texts.items()], axis=1)
    path = tft.vocabulary(keyed, top_k=1, key_fn=vocabulary_column, coverage_top_k=VOCABULARY_TOP_K,
                          vocab_filename=FEATURE_VOCABULARY)
    parsed: Dict[str, Dict[str, list]] = {}  # this trace's reading of the file, shared by the columns
    return {transformed_name(name): tft.apply_vocabulary(
                text, path, num_oov_buckets=OOV_BUCKETS, lookup_fn=functools.partial(_column_lookup, name, parsed))
            for name, text in texts.items()}


def as_float(x: Tensorish, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """A [batch, 1] float tensor, NaN where the value is missing: absent from a sparse feature, or
    MISSING_INTEGER in an integer one (a served request's empty cell)."""
    if x.dtype.is_integer:
        dense = fill_missing(x, MISSING_INTEGER)
        return tf.where(tf.equal(dense, MISSING_INTEGER), tf.constant(float("nan"), dtype), tf.cast(dense, dtype))
    return fill_missing(tf.cast(x, dtype), float("nan"))


def cell_text(x: Tensorish) -> tf.Tensor:
    """A [batch, 1] string tensor of a column read as words or categories, "" where missing (an
    integer's missing cell too, as the edge host writes it; a float's keeps its old "0")."""
    if x.dtype == tf.string:
        return fill_missing(x, "")
    if x.dtype.is_integer:
        dense = fill_missing(x, MISSING_INTEGER)
        return tf.where(tf.equal(dense, MISSING_INTEGER), tf.constant(""), tf.strings.as_string(dense))
    return tf.strings.as_string(fill_missing(x, 0))


def table_features(name: str, tensor: Tensorish, column: ColumnSpec, na_tokens
                   ) -> Tuple[Dict[str, tf.Tensor], Dict[str, tf.Tensor]]:
    """A user's column by its kind (``TransformSpec.columns``), as (texts by column, numbers by
    output name): booleans and categories are texts for vocabularies, date-times their parts and
    numbers floats to z-score."""
    kind = column.kind
    if kind == "datetime":
        raw = clean_text(fill_missing(tensor, ""), na_tokens) if tensor.dtype == tf.string else \
            as_float(tensor, tf.float64)  # Unix seconds: float32 would round them to minutes
        parts = date_parts(raw, column.format or "iso")
        return {}, {transformed_name(f"{name}__{part}"): value for part, value in parts.items()}
    if kind in ("boolean", "string") or tensor.dtype == tf.string:
        text = clean_text(cell_text(tensor), na_tokens)
        if kind == "boolean":
            text = boolean_text(text)
        return {name: text}, {}
    return {}, {transformed_name(name): as_float(tensor)}


def free_text(tensor: Tensorish, name: str, column: ColumnSpec, na_tokens) -> Dict[str, tf.Tensor]:
    """A text column as [batch, length] word ids and, for the tfidf learner, their TF-IDF weights
    (components.text_features); missing is no words."""
    text = cell_text(tensor)
    ids, weights = text_ids(clean_text(text, na_tokens), name, column.length, column.ngrams, column.tfidf)
    return {transformed_name(name): ids, **({transformed_name(tfidf_column(name)): weights} if column.tfidf else {})}


def preprocessing_fn(inputs: Mapping[str, Tensorish], custom_config: Dict[str, Any]) -> Dict[str, tf.Tensor]:
    config = TransformSpec.from_dict(custom_config)
    targets = dict(config.targets)
    na_tokens = tuple(NA_TOKENS) + config.na_values
    if config.task == "forecast":
        if config.season:
            return series_features(inputs, config)
        (window, shape), = config.tensors.items()
        (target, _), = targets.items()
        return forecast_features(inputs, window, list(shape), target)
    outputs, texts, numbers = {}, {}, {}
    image = config.image
    ignored = set(image.ignore) if image else set()
    for name, tensor in inputs.items():
        if name in targets or name in ignored:
            continue
        if image and name == image.feature:
            outputs[transformed_name(name)] = image_features(tensor, image.size)
            continue
        if config.columns is not None:  # a user's table: kinds decided by the preflight
            if name in config.columns and config.columns[name].kind == "text":
                outputs.update(free_text(tensor, name, config.columns[name], na_tokens))
            elif name in config.columns:
                column_texts, column_numbers = table_features(name, tensor, config.columns[name], na_tokens)
                texts.update(column_texts)
                numbers.update(column_numbers)
            continue
        if name in config.tensors:
            outputs[transformed_name(name)] = scale_tensor(tensor, list(config.tensors[name]), name)
        elif tensor.dtype == tf.string:
            texts[name] = fill_missing(tensor, "")
        else:  # statistics over present values only; a missing value becomes the mean (z = 0)
            numbers[transformed_name(name)] = as_float(tensor)
    outputs.update(vocabulary_ids(texts))
    outputs.update(z_scores(numbers))
    for label, subtask in targets.items():
        outputs[transformed_name(label)] = encode_label(inputs[label], get_task(subtask).label_encoding, label)
    if config.task == "regression":
        outputs.update(label_scaling(inputs, next(iter(targets))))
    return outputs


def label_scaling(inputs: Mapping[str, Tensorish], label: str) -> Dict[str, tf.Tensor]:
    """The label's train mean and standard deviation as [batch, 1] constants, shaped by a feature
    that serving requests carry (the label is absent there)."""
    values = tf.cast(fill_missing(inputs[label], float("nan")), tf.float32)
    indices = tf.where(tf.math.is_finite(values))
    present = tf.gather_nd(values, indices)
    mean, variance = tft.mean(present), tft.var(present)
    feature = inputs[next(name for name in sorted(inputs) if name != label)]
    batch = feature.dense_shape[0] if isinstance(feature, tf.SparseTensor) else tf.shape(feature, tf.int64)[0]
    ones = tf.ones(tf.stack([batch, tf.constant(1, tf.int64)]), tf.float32)
    return {LABEL_OFFSET: ones * mean, LABEL_SCALE: ones * tf.maximum(tf.sqrt(variance), 1e-6)}
