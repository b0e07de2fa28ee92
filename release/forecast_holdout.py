"""A forecaster on its holdout, beside the forecasts it has to beat: each series' last ``horizon``
points forecast by the model (through its ``serving_default`` signature, from the ``lookback``
points before them, as a client would ask), by the seasonal naive forecast and by ETS, all scored
in the series' units by ``release.forecast_baselines`` (MAE, RMSE, sMAPE, MASE). The run summary
and the model card show it."""
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence, Tuple

import numpy as np

from components.gate_metrics import OVERALL
from release.forecast_baselines import ForecastScores, fit_baselines, pooled
from serving.codec.periods import FORECAST_OUTPUT, SeriesInfo
from serving.forecast_client import SeriesWindow, request_row

if TYPE_CHECKING:  # core.run_report reads ML Metadata; this module is imported where none is needed
    from core.run_report import RunReport

MAX_ETS_SERIES = 20  # ETS is fitted on the first ones of a long table (~1 s a series); the count is shown


@dataclass(frozen=True)
class HoldoutComparison:
    model: Optional[ForecastScores]  # None when the model could not be read
    seasonal_naive: ForecastScores
    ets: ForecastScores
    ets_models: Tuple[str, ...]
    series: int
    ets_series: int
    horizon: int
    season: int
    # the model on the series ETS was fitted on, where those are fewer: what ETS's scores compare with
    model_on_ets_series: Optional[ForecastScores] = None

    @property
    def rows(self) -> Tuple[Tuple[str, Optional[ForecastScores]], ...]:
        """(name, scores) of each forecaster as the summary and the card show them."""
        forms = sorted(set(self.ets_models))
        shown = ", ".join(forms[:3]) + (", ..." if len(forms) > 3 else "")
        first = f"first {self.ets_series} series"
        capped = self.model_on_ets_series is not None
        rows = (("model", self.model), ("seasonal naive", self.seasonal_naive),
                (f"ETS ({shown}{'; ' + first if capped else ''})", self.ets))
        return rows + (((f"model on the {first}", self.model_on_ets_series),) if capped else ())


def model_forecasts(model_dir: str, windows: Sequence[SeriesWindow], info: SeriesInfo) -> np.ndarray:
    """[series, horizon] forecasts in the series' units, each asked as a client asks (``request_row``)."""
    import tensorflow as tf

    signature = tf.saved_model.load(model_dir).signatures["serving_default"]
    specs = signature.structured_input_signature[1]
    rows = [request_row(window, info) for window in windows]
    outputs = signature(**{name: tf.constant([row[name] for row in rows], spec.dtype) for name, spec in specs.items()})
    return outputs[FORECAST_OUTPUT].numpy().astype(float)


def compare_on_holdout(model_dir: Optional[str], per_series: Sequence[Tuple[Sequence[float], Sequence[float]]],
                       windows: Sequence[SeriesWindow], info: SeriesInfo, season: int) -> HoldoutComparison:
    """``per_series``: (history, actual) of each series, the holdout ``actual`` its last horizon;
    ``windows``: the request of each series for those points."""
    horizon = info.horizon
    baselines = fit_baselines(per_series, horizon, season, MAX_ETS_SERIES)
    scores = on_ets_series = None
    if model_dir:
        forecasts = model_forecasts(model_dir, windows, info)
        scored = [(actual, forecast, history) for (history, actual), forecast in zip(per_series, forecasts)]
        scores = pooled(scored, season)
        if baselines.ets_series < baselines.series:
            on_ets_series = pooled(scored[:baselines.ets_series], season)
    return HoldoutComparison(scores, baselines.seasonal_naive, baselines.ets, baselines.ets_models,
                             baselines.series, baselines.ets_series, horizon, season, on_ets_series)


def comparison_lines(comparison: HoldoutComparison) -> list:
    """The summary's lines: one per forecaster, in the series' units."""
    rows = comparison.rows
    lines = [f"holdout forecasts (last {comparison.horizon} points of {comparison.series} series, in their units; "
             "MASE < 1 beats the seasonal naive in-sample error):"]
    width = max(28, *(len(name) for name, _ in rows))  # several ETS forms make a long name
    for name, s in rows:
        if s is not None:
            lines.append(f"  {name:<{width}} MAE {s.mae:.4g}  RMSE {s.rmse:.4g}  sMAPE {s.smape:.2f}%  "
                         f"MASE {s.mase:.3f}")
    return lines


def gate_notes(report: "RunReport", gate_metric: str, bound: Optional[float]) -> list:
    """``gate_disagrees_lines`` of a run judged on ``gate_metric`` against ``bound``; nothing where
    it has no holdout, verdict or gate value."""
    gate_value = report.metrics.get(OVERALL, {}).get(gate_metric)
    if report.holdout is None or report.blessed is None or gate_value is None or bound is None:
        return []
    return gate_disagrees_lines(report.holdout, report.blessed, gate_value, bound)


def gate_disagrees_lines(comparison: HoldoutComparison, blessed: bool, gate_value: float, bound: float) -> list:
    """Where the gate's MASE (scaled by the windows' seasonal steps) and this holdout disagree, say so:
    a refused forecaster that beats seasonal naive here (a series that grows or turns: its holdout
    errors are large next to those steps), with how to gate on another bound; a blessed one that
    seasonal naive beats here. Nothing otherwise."""
    model, naive = comparison.model, comparison.seasonal_naive
    if model is None:
        return []
    if not blessed and gate_value > bound and model.mae < naive.mae:
        return [f"the refused model beats seasonal naive on this holdout (MAE {model.mae:.4g} vs {naive.mae:.4g}), "
                f"while its gate's MASE is {gate_value:.4g} (bound {bound:g}): the holdout moves more than its "
                "windows' seasonal steps; `--threshold` sets another bound"]
    if blessed and model.mae > naive.mae:
        why = ("the windows' errors it was gated on were smaller than this holdout's; a lower `--threshold` asks "
               "more of it") if gate_value < 1 else \
            "above 1, it trails seasonal naive on its windows too, and passed only the looser bound given"
        return [f"seasonal naive beats the blessed model on this holdout (MAE {naive.mae:.4g} vs {model.mae:.4g}), "
                f"though its gate's MASE is {gate_value:.4g} (bound {bound:g}): {why}"]
    return []

