"""The edge model of a user's series (``--task forecast --time COL``): raw window in, forecast in
the series' units out.

The Transform scales each window by itself and adds the base forecast the train windows chose; both
are graph functions of the window (components.transform.window_level_and_scale,
components.forecast_bases), so the edge model computes them with the same functions, given the
Transform's constants, read from its graph by probing it: which base it chose, and the affine map of
each covariate's moves (its train mean and standard deviation). TF Lite's builtins do not parse
strings, so a daily or weekly model's first forecast date arrives as days since 1970-01-01, which
the host computes from the date (serving.edge_runtime, kind ``day``).
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np
import tensorflow as tf

from components import forecast_bases
from components.edge_folding import probe_example
from components.export import CALL_TRANSFORMED, FORECAST
from components.features import FORECAST_BASE, KNOWN_AHEAD, PREDICTIONS, transformed_name
from components.transform import calendar_parts_of_days, covariate_moves, window_level_and_scale
from serving.codec.periods import NEXT_DATE_INPUT, WINDOW_INPUT, SeriesInfo, seasonal_lag

PROBE_DATE = "2001-03-05"


@dataclass(frozen=True)
class SeriesConstants:
    """What the Transform's analyzers fixed, as the edge model needs it."""
    base: int  # the index in forecast_bases.BASE_NAMES of the base the train windows chose
    covariates: Tuple[Tuple[float, float], ...] = ()  # (factor, shift): scaled = moves x factor + shift


def _probe(raw_spec: Mapping[str, Any], info: SeriesInfo, ahead: float) -> bytes:
    """A window of ones with its targets, first forecast date and covariates (0 over the window,
    ``ahead`` at the forecast steps)."""
    overrides: Dict[str, Any] = {key: [0.0] * info.lookback + [ahead] * info.horizon for _, key in info.covariates}
    if NEXT_DATE_INPUT in raw_spec:
        overrides[NEXT_DATE_INPUT] = PROBE_DATE.encode()
    return probe_example(raw_spec, 1.0, overrides)


def series_constants(served: Any, raw_spec: Mapping[str, Any], info: SeriesInfo) -> SeriesConstants:
    """The Transform's constants, from its ``transform_features`` signature on two probes: a
    covariate's moves map to ``moves x factor + shift`` (its (moves - mean) / std; 0 for one that
    never moved in the train windows, as the Transform's divide_no_nan gives)."""
    probes = tf.constant([_probe(raw_spec, info, 0.0), _probe(raw_spec, info, 1.0)])
    out = {k: v.numpy() for k, v in served.signatures["transform_features"](examples=probes).items()}
    covariates = []
    for index in range(len(info.covariates)):
        still, moved = (float(out[transformed_name(KNOWN_AHEAD)][row, 0, index]) for row in (0, 1))
        covariates.append((moved - still, still))
    return SeriesConstants(int(np.reshape(out[FORECAST_BASE], [-1])[0]), tuple(covariates))


def series_inputs(info: SeriesInfo) -> List[Dict[str, Any]]:
    """The edge model's inputs, as the sidecar describes them to the host: the window's last
    ``lookback`` values, the first forecast step's day (daily and weekly) and each covariate's
    ``lookback + horizon`` values, all raw."""
    inputs = [{"name": WINDOW_INPUT, "kind": "tensor", "dtype": "float32", "shape": [info.lookback]}]
    if info.axis.has_calendar:
        inputs.append({"name": NEXT_DATE_INPUT, "kind": "day", "dtype": "float32", "shape": []})
    inputs.extend({"name": key, "source": key, "kind": "tensor", "dtype": "float32",
                   "shape": [info.lookback + info.horizon]} for _, key in info.covariates)
    return inputs


def series_edge_function(model: Any, info: SeriesInfo, constants: SeriesConstants) -> Any:
    """A concrete function from the raw inputs (``series_inputs``) to ``forecast`` ([batch,
    horizon], the series' units) through the loaded SavedModel's ``CALL_TRANSFORMED`` function."""
    lookback, horizon = info.lookback, info.horizon
    lag = seasonal_lag(info.axis.season, lookback)
    specs = {spec["name"]: tf.TensorSpec([None, *spec["shape"]], tf.float32, name=spec["name"])
             for spec in series_inputs(info)}

    @tf.function(input_signature=[specs])
    def edge(features):
        values = features[WINDOW_INPUT]
        level, scale = window_level_and_scale(values, lag)
        base = forecast_bases.one_base(values, lag, horizon, constants.base)
        window = ((values - level) / scale)[:, :, tf.newaxis]  # [batch, lookback, 1], as the Transform shapes it
        ahead = []
        if info.covariates:
            stacked = tf.stack([covariate_moves(features[key], lookback) * factor + shift
                                for (_, key), (factor, shift) in zip(info.covariates, constants.covariates)], axis=2)
            window = tf.concat([window, stacked[:, :lookback, :]], axis=2)
            ahead.append(stacked[:, lookback:, :])
        if info.axis.has_calendar:
            ahead.append(calendar_parts_of_days(features[NEXT_DATE_INPUT], horizon, info.axis.frequency))
        transformed = {transformed_name(WINDOW_INPUT): window}
        if ahead:
            transformed[transformed_name(KNOWN_AHEAD)] = tf.concat(ahead, axis=2)
        outputs = getattr(model, CALL_TRANSFORMED)(transformed)
        predictions = outputs[PREDICTIONS] if isinstance(outputs, dict) else outputs
        return {FORECAST: predictions * scale + base}

    return edge.get_concrete_function()
