"""Forecasts a forecaster has to beat, and the scores every forecast is judged by, on the same
holdout (the last ``horizon`` points of each series): the seasonal naive forecast (the last season
repeated) and exponential smoothing (statsmodels' ETS, its form chosen by AICc as R's ``ets()``
and statsforecast's AutoETS choose it). Scores: MAE, RMSE, sMAPE (percent, 0-200) and MASE (the
error over the history's own seasonal-naive error: below 1 beats the seasonal naive forecast).

numpy and statsmodels only: the summary, the card and the bench call it without TensorFlow.
"""
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from serving.codec.periods import seasonal_lag

# ETS forms tried: error x trend (none, additive, additive damped) x season (none, additive,
# multiplicative). As R's ets(restrict=TRUE): no additive error with a multiplicative season
# (numerically unstable), and multiplicative parts only for positive series.
_TRENDS = ((None, False), ("add", False), ("add", True))


@dataclass(frozen=True)
class ForecastScores:
    """One forecast's errors on a holdout, or a set of series' pooled (see ``pooled``)."""
    mae: float
    rmse: float
    smape: float  # percent, 0-200
    mase: float  # below 1: better than the seasonal naive forecast's in-sample error


@dataclass(frozen=True)
class SeriesBaselines:
    """What the summary and the card show beside the model, pooled over the series."""
    seasonal_naive: ForecastScores
    ets: ForecastScores  # over the first ``ets_series`` series (all, unless capped)
    ets_models: Tuple[str, ...]  # the form chosen per series fitted, e.g. "ETS(M,A,M)"
    series: int = 0
    ets_series: int = 0


def _values(series: Sequence[float]) -> np.ndarray:
    return np.asarray(series, dtype=float).reshape(-1)


def seasonal_naive(history: Sequence[float], horizon: int, season: int) -> np.ndarray:
    """The last season repeated over the horizon (season 1, or a history shorter than a season:
    the last value repeated)."""
    values = _values(history)
    season = season if 1 < season <= len(values) else 1
    last = values[-season:]
    return np.array([last[i % season] for i in range(horizon)])


def mase_scale(history: Sequence[float], season: int) -> float:
    """The in-sample MAE of the seasonal naive forecast on ``history`` (lag ``season``; lag 1 when
    the history holds fewer than two seasons), floored so that a flat history still divides."""
    values = _values(history)
    lag = seasonal_lag(season, len(values))
    if len(values) <= lag:
        return max(float(np.mean(np.abs(values))) * 1e-6, 1e-12)
    error = float(np.mean(np.abs(values[lag:] - values[:-lag])))
    return max(error, float(np.mean(np.abs(values))) * 1e-6, 1e-12)


def scores(actual: Sequence[float], forecast: Sequence[float], history: Sequence[float], season: int
           ) -> ForecastScores:
    actual_values, forecast_values = _values(actual), _values(forecast)
    if actual_values.shape != forecast_values.shape:
        raise ValueError(f"{len(forecast_values)} forecast points for {len(actual_values)} actual ones")
    errors = forecast_values - actual_values
    mae = float(np.mean(np.abs(errors)))
    denominators = np.abs(actual_values) + np.abs(forecast_values)
    shares = np.divide(np.abs(errors), denominators, out=np.zeros_like(errors), where=denominators > 0)
    return ForecastScores(mae=mae, rmse=float(np.sqrt(np.mean(errors ** 2))), smape=float(200.0 * np.mean(shares)),
                          mase=mae / mase_scale(history, season))


def pooled(per_series: Sequence[Tuple[Sequence[float], Sequence[float], Sequence[float]]], season: int
           ) -> ForecastScores:
    """(actual, forecast, history) of each series -> MAE, RMSE and sMAPE over all their points, MASE
    the mean of each series' own (a series' units do not weigh on it)."""
    if not per_series:
        raise ValueError("no series to score")
    actual = np.concatenate([_values(a) for a, _, _ in per_series])
    forecast = np.concatenate([_values(f) for _, f, _ in per_series])
    everything = scores(actual, forecast, actual, 1)
    mase = float(np.mean([scores(a, f, h, season).mase for a, f, h in per_series]))
    return ForecastScores(everything.mae, everything.rmse, everything.smape, mase)


def _ets_forms(values: np.ndarray, season: int):
    positive = bool(np.all(values > 0))
    seasons = [None]
    if season > 1 and len(values) >= 2 * season + 2:  # statsmodels needs two full seasons to start
        seasons += ["add", "mul"] if positive else ["add"]
    for error in ("add", "mul") if positive else ("add",):
        for trend, damped in _TRENDS:
            for seasonal in seasons:
                if error == "add" and seasonal == "mul":
                    continue
                yield error, trend, damped, seasonal


def _ets_name(error: str, trend: Optional[str], damped: bool, seasonal: Optional[str]) -> str:
    letter = {None: "N", "add": "A", "mul": "M"}
    return f"ETS({letter[error]},{letter[trend]}{'d' if damped else ''},{letter[seasonal]})"


def ets_forecast(history: Sequence[float], horizon: int, season: int) -> Tuple[np.ndarray, str]:
    """(forecast, form) of the ETS model with the lowest AICc among ``_ets_forms``; a history too
    short for any (under 4 points) or where every fit fails gets the seasonal naive forecast."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    values = _values(history)
    best: Optional[Tuple[float, np.ndarray, str]] = None
    if len(values) >= 4:
        for error, trend, damped, seasonal in _ets_forms(values, season):
            with warnings.catch_warnings():  # convergence chatter: a poor fit loses on AICc anyway
                warnings.simplefilter("ignore")
                try:
                    fit = ETSModel(values, error=error, trend=trend, damped_trend=damped, seasonal=seasonal,
                                   seasonal_periods=season if seasonal else None).fit(disp=False)
                    forecast = np.asarray(fit.forecast(horizon), dtype=float)
                except (ValueError, np.linalg.LinAlgError):
                    continue
            if np.isfinite(fit.aicc) and np.all(np.isfinite(forecast)) and (best is None or fit.aicc < best[0]):
                best = (float(fit.aicc), forecast, _ets_name(error, trend, damped, seasonal))
    if best is None:
        return seasonal_naive(values, horizon, season), "seasonal naive (no ETS fit)"
    return best[1], best[2]


def fit_baselines(per_series: Sequence[Tuple[Sequence[float], Sequence[float]]], horizon: int, season: int,
                  max_ets_series: Optional[int] = None) -> SeriesBaselines:
    """(history, actual) of each series -> the seasonal naive and ETS forecasts' pooled scores.
    ETS tries up to 15 forms per series (~0.9 s for 132 monthly points): ``max_ets_series`` caps the
    series it is fitted on (the first ones), so a run's summary of a long table stays cheap; the
    count is stated beside the scores."""
    naive = [(actual, seasonal_naive(history, horizon, season), history) for history, actual in per_series]
    ets, forms = [], []
    for history, actual in per_series[:max_ets_series]:
        forecast, form = ets_forecast(history, horizon, season)
        ets.append((actual, forecast, history))
        forms.append(form)
    return SeriesBaselines(pooled(naive, season), pooled(ets, season), tuple(forms), len(naive), len(ets))
