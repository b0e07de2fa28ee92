"""`make bench`: what classical forecasters reach on bench/forecast_bench.py's series, scored as it
scores the model (the same holdout, MASE over the whole history's seasonal naive error): is
"MASE < 1" within reach of any of them on a series?

Forecasters (statsmodels, as the lock pins it): seasonal naive; ETS with the form chosen by AICc
(release/forecast_baselines.py, the bench's own column); Holt-Winters on the logarithms, additive
trend, damped and not; the airline model SARIMA(0,1,1)(0,1,1) on the logarithms; the Theta method.
Series with a value <= 0 skip the forms on logarithms. A long table's MASE is the mean of its series'
(as the bench scores the model).

Writes bench/results/forecast_references.json and forecast_references.md.

    python bench/forecast_references.py [--only NAME,...]
"""
import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from forecast_bench import RESULTS, SERIES, holdout  # noqa: E402 (bench/, the script's folder)

from release import forecast_baselines as baselines  # noqa: E402

Forecaster = Callable[[np.ndarray, int, int], np.ndarray]  # (history, horizon, season) -> forecast


def _log_holt_winters(damped: bool) -> Forecaster:
    def forecast(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        seasonal = "add" if season > 1 else None
        fitted = ExponentialSmoothing(np.log(history), trend="add", damped_trend=damped, seasonal=seasonal,
                                      seasonal_periods=season if seasonal else None).fit()
        return np.exp(fitted.forecast(horizon))
    return forecast


def _log_airline(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    seasonal = (0, 1, 1, season) if season > 1 else (0, 0, 0, 0)
    fitted = SARIMAX(np.log(history), order=(0, 1, 1), seasonal_order=seasonal).fit(disp=False)
    return np.exp(fitted.forecast(horizon))


def _theta(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    from statsmodels.tsa.forecasting.theta import ThetaModel

    return np.asarray(ThetaModel(history, period=season, deseasonalize=season > 1).fit().forecast(horizon))


FORECASTERS: Dict[str, Forecaster] = {
    "seasonal naive": baselines.seasonal_naive,
    "ETS (AICc)": lambda h, n, s: baselines.ets_forecast(h, n, s)[0],
    "Holt-Winters on logs": _log_holt_winters(False),
    "Holt-Winters on logs, damped": _log_holt_winters(True),
    "SARIMA(0,1,1)(0,1,1) on logs": _log_airline,
    "Theta": _theta,
}
ON_LOGS = ("Holt-Winters on logs", "Holt-Winters on logs, damped", "SARIMA(0,1,1)(0,1,1) on logs")


def _mase(name: str, history: np.ndarray, actual: np.ndarray, season: int) -> Optional[float]:
    if name in ON_LOGS and (history <= 0).any():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forecast = FORECASTERS[name](history, len(actual), season)
    return baselines.scores(actual, forecast, history, season).mase


def _markdown(rows: List[Dict[str, object]], model: Dict[str, float]) -> str:
    names = list(FORECASTERS)
    lines = ["# Classical forecasters on the forecast bench's series (issue 41)", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. MASE on each series' holdout (its last H "
             "points), scaled by the whole history's seasonal naive error, as bench/results/forecast.md scores "
             "the model; the model's MASE is copied from there. A long table: the mean of its series' MASE.", "",
             "| series | model | " + " | ".join(names) + " | best classical |",
             "|---|---|" + "---|" * len(names) + "---|"]
    for row in rows:
        mases = row["mase"]
        best = min(v for v in mases.values() if v is not None)
        cells = ["-" if mases[n] is None else f"{mases[n]:.3f}" for n in names]
        mine = model.get(row["name"])
        lines.append(f"| {row['name']} | {'-' if mine is None else f'{mine:.3f}'} | " + " | ".join(cells)
                     + f" | {best:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated series names")
    only = {n for n in parser.parse_args().only.split(",") if n}
    rows = []
    for series in SERIES:
        if (only and series.name not in only) or series.covariates:
            continue  # a covariate changes nothing for these forecasters
        pairs = holdout(series.make(), series.horizon)
        mases = {name: [_mase(name, history, actual, series.season) for history, actual in pairs]
                 for name in FORECASTERS}
        rows.append({"name": series.name, "season": series.season, "horizon": series.horizon, "series": len(pairs),
                     "mase": {name: None if None in values else float(np.mean(values))
                              for name, values in mases.items()}})
        print(json.dumps(rows[-1]), flush=True)
    bench = json.loads((RESULTS / "forecast.json").read_text()) if (RESULTS / "forecast.json").exists() else {}
    model = {r["name"]: r["model"]["mase"] for r in bench.get("series", []) if r.get("model")}
    (RESULTS / "forecast_references.json").write_text(json.dumps({"results": rows}, indent=1) + "\n")
    (RESULTS / "forecast_references.md").write_text(_markdown(rows, model))


if __name__ == "__main__":
    main()
