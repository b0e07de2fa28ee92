"""`make bench`: `mlops run --data F --label L`, default options, on real public tables this project
was not built on, written to CSV from installed packages (statsmodels' datasets, scikit-learn's
bundled ones; nothing downloaded) as users' tools write them: R-style dotted names, spaces, NA cells,
yes/no labels, text categories.

For each table: pushed or not and why (the run summary's own lines), the gate metric against the
scikit-learn baseline the run fits on the same split, the issue's bar (AUC or accuracy >= the
baseline's - 0.01; RMSE or MAE <= 1.02x the baseline's) and seconds. The corpus holds at least: a
category of under 5 rows (modechoice's party of 6), a 10^9-scale column (macrodata's real GDP in
dollars), tables under 400 rows, an 86-column table (macrodata: 12 real series with their lags 1-6,
year and quarter), an imbalanced binary label (randhie's poor health, ~1.5% positives), a label with
NA rows (fertility in 2011) and boolean-looking labels (yes/no).

Writes bench/results/tables.json and tables.md.

    python bench/tables_bench.py [--only NAME,...] [--budget-seconds S]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pandas as pd
from summary_lines import outcome  # bench/: the script's folder is on the path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
HIGHER_IS_BETTER = {"auc": True, "sparse_categorical_accuracy": True, "root_mean_squared_error": False,
                    "mean_absolute_error": False}


@dataclass(frozen=True)
class Table:
    name: str
    label: str
    source: str  # where the rows come from
    make: Callable[[], pd.DataFrame]
    traits: str = ""


def _sm(name: str) -> pd.DataFrame:
    import statsmodels.api as sm

    return getattr(sm.datasets, name).load_pandas().data.copy()


def _sk(loader: str) -> pd.DataFrame:
    import sklearn.datasets as sk

    bunch = getattr(sk, loader)(as_frame=True)
    return bunch.frame.copy()


def _yes_no(values) -> List[str]:
    return ["yes" if v else "no" for v in values]


def _fair_affair() -> pd.DataFrame:
    d = _sm("fair")
    d["had affair"] = _yes_no(d.pop("affairs") > 0)
    d["occupation"] = d["occupation"].map({1: "student", 2: "farming", 3: "white-collar", 4: "teacher",
                                           5: "managerial", 6: "professional"})
    return d


def _fair_marriage() -> pd.DataFrame:
    d = _sm("fair")
    d["rate_marriage"] = d["rate_marriage"].map({1: "very poor", 2: "poor", 3: "fair", 4: "good", 5: "very good"})
    return d


def _randhie_visits() -> pd.DataFrame:
    return _sm("randhie").iloc[:20_000]


def _randhie_poor_health() -> pd.DataFrame:
    d = _sm("randhie").iloc[:20_000].drop(columns=["hlthg", "hlthf"])
    d["poor.health"] = d.pop("hlthp").astype(int)
    return d


def _anes_vote() -> pd.DataFrame:
    d = _sm("anes96").drop(columns=["logpopul"])
    d["educ"] = d["educ"].map({1: "1. grade school", 2: "2. some high school", 3: "3. high school",
                               4: "4. some college", 5: "5. associate", 6: "6. bachelor", 7: "7. graduate"})
    d["vote"] = d["vote"].map({0: "Clinton", 1: "Dole"})
    return d


def _anes_party() -> pd.DataFrame:
    d = _sm("anes96").drop(columns=["logpopul", "vote"])
    d["PID"] = d["PID"].map({0: "strong Democrat", 1: "weak Democrat", 2: "independent Democrat",
                             3: "independent", 4: "independent Republican", 5: "weak Republican",
                             6: "strong Republican"})
    return d


def _modechoice() -> pd.DataFrame:
    d = _sm("modechoice").drop(columns=["individual"])
    d["mode"] = d["mode"].map({1: "air", 2: "train", 3: "bus", 4: "car"})
    d["party"] = d.pop("psize").map(lambda n: f"party of {int(n)}")  # 'party of 6': 4 rows
    d["chosen"] = _yes_no(d.pop("choice") > 0)
    return d


def _grunfeld() -> pd.DataFrame:
    return _sm("grunfeld")


def _star98() -> pd.DataFrame:
    d = _sm("star98")
    d["share.above"] = d["NABOVE"] / (d["NABOVE"] + d["NBELOW"])
    return d.drop(columns=["NABOVE", "NBELOW"])


def _engel() -> pd.DataFrame:
    return _sm("engel")


def _cancer() -> pd.DataFrame:
    return _sm("cancer")


def _macro_wide() -> pd.DataFrame:
    """12 real quarterly series, each with its lags 1-6 (84 columns), year and quarter: 86 columns;
    real GDP in dollars (10^13); label: next quarter's real GDP growth, in percent."""
    d = _sm("macrodata")
    series = [c for c in d.columns if c not in ("year", "quarter")]
    d["realgdp"] = d["realgdp"] * 1e9  # billions of chained 2005 dollars -> dollars
    out = d[["year", "quarter"]].copy()
    for column in series:
        out[column] = d[column]
        for lag in range(1, 7):
            out[f"{column}.lag{lag}"] = d[column].shift(lag)
    out["gdp.growth.next"] = (d["realgdp"].shift(-1) / d["realgdp"] - 1) * 100
    return out.iloc[6:-1].reset_index(drop=True)


def _fertility() -> pd.DataFrame:
    d = _sm("fertility").drop(columns=["Indicator Name", "Indicator Code", "Country Code"])
    keep = ["Country Name"] + [str(y) for y in range(1960, 2001, 5)] + ["2011"]
    return d[keep]


def _iris_r() -> pd.DataFrame:
    d = _sk("load_iris")
    d.columns = ["Sepal.Length", "Sepal.Width", "Petal.Length", "Petal.Width", "Species"]
    d["Species"] = d["Species"].map({0: "setosa", 1: "versicolor", 2: "virginica"})
    return d


def _wine() -> pd.DataFrame:
    d = _sk("load_wine")
    d["target"] = d["target"].map({0: "cultivar A", 1: "cultivar B", 2: "cultivar C"})
    return d


def _breast_cancer() -> pd.DataFrame:
    d = _sk("load_breast_cancer")
    d["diagnosis"] = d.pop("target").map({0: "malignant", 1: "benign"})
    return d


def _diabetes() -> pd.DataFrame:
    d = _sk("load_diabetes")
    d["Disease Progression"] = d.pop("target")
    return d


def _digits() -> pd.DataFrame:
    d = _sk("load_digits")
    d["digit"] = d.pop("target")
    return d


def _statecrime() -> pd.DataFrame:
    return _sm("statecrime").reset_index().rename(columns={"state": "State"})


def _strikes() -> pd.DataFrame:
    return _sm("strikes")


def _heart() -> pd.DataFrame:
    d = _sm("heart")
    d["censors"] = d["censors"].map({1.0: "TRUE", 0.0: "FALSE"})
    return d


def _ccard() -> pd.DataFrame:
    d = _sm("ccard")
    d["OWNRENT"] = d["OWNRENT"].map({1.0: "own", 0.0: "rent"})
    return d


TABLES = [
    Table("fair_affair", "had affair", "statsmodels fair", _fair_affair, "yes/no label; text category"),
    Table("fair_marriage", "rate_marriage", "statsmodels fair", _fair_marriage, "5 text classes"),
    Table("randhie_visits", "mdvis", "statsmodels randhie", _randhie_visits, "20,000 rows, counts"),
    Table("randhie_poor_health", "poor.health", "statsmodels randhie", _randhie_poor_health,
          "imbalanced binary (~1.5% positives)"),
    Table("anes_vote", "vote", "statsmodels anes96", _anes_vote, "text label; 7-level text category"),
    Table("anes_party", "PID", "statsmodels anes96", _anes_party, "7 text classes"),
    Table("modechoice", "chosen", "statsmodels modechoice", _modechoice, "yes/no label; 'party of 6' has 4 rows"),
    Table("grunfeld", "invest", "statsmodels grunfeld", _grunfeld, "220 rows; firm as text"),
    Table("star98", "share.above", "statsmodels star98", _star98, "303 rows, 21 columns"),
    Table("engel", "foodexp", "statsmodels engel", _engel, "235 rows, one feature"),
    Table("cancer", "cancer", "statsmodels cancer", _cancer, "301 rows, one feature"),
    Table("macro_wide", "gdp.growth.next", "statsmodels macrodata", _macro_wide,
          "86 columns, 196 rows; real GDP in dollars (10^13)"),
    Table("fertility", "2011", "statsmodels fertility", _fertility, "label NA on 17 rows; NA cells; a name column"),
    Table("iris_r", "Species", "scikit-learn iris", _iris_r, "R's dotted names; 150 rows"),
    Table("wine", "target", "scikit-learn wine", _wine, "178 rows"),
    Table("breast_cancer", "diagnosis", "scikit-learn breast_cancer", _breast_cancer, "text binary label"),
    Table("diabetes", "Disease Progression", "scikit-learn diabetes", _diabetes, "442 rows"),
    Table("digits", "digit", "scikit-learn digits", _digits, "64 pixel columns, 10 classes"),
    Table("anes_vote_small", "vote", "statsmodels anes96 (first 380 rows)", lambda: _anes_vote().iloc[:380],
          "under 400 rows"),
    Table("statecrime", "violent", "statsmodels statecrime", _statecrime, "51 rows"),
    Table("strikes", "duration", "statsmodels strikes", _strikes, "62 rows, one feature"),
    Table("heart", "censors", "statsmodels heart", _heart, "69 rows; TRUE/FALSE label"),
    Table("ccard", "AVGEXP", "statsmodels ccard", _ccard, "72 rows; own/rent category"),
    Table("fair_small", "had affair", "statsmodels fair (390 rows drawn at random)",
          lambda: _fair_affair().sample(390, random_state=0).reset_index(drop=True),
          "under 400 rows, yes/no"),
]


def _parse(out: str) -> Dict[str, object]:
    """What the run summary says: blessing, pushed version, the baseline line, the failure."""
    facts = outcome(out)
    baseline = re.search(r"^baseline on the same split, (.+): (\w+) ([\d.eE+-]+) \(the model: ([\d.eE+-]+)\)$",
                         out, re.M)
    if baseline:
        facts.update(baseline_model=baseline.group(1), metric=baseline.group(2),
                     baseline=float(baseline.group(3)), model=float(baseline.group(4)))
    edge = re.findall(r"^  (\w+)\s+[\d.]+ KiB.*(shipped|left out)", out, re.M)
    facts["edge_shipped"] = [variant for variant, verdict in edge if verdict == "shipped"]
    facts["task"] = (re.search(r"^task: (\w+)", out, re.M) or [None, None])[1]
    return facts


def _bar(facts: Dict[str, object]) -> Optional[bool]:
    metric = facts.get("metric")
    if metric not in HIGHER_IS_BETTER:
        return None
    model, baseline = float(facts["model"]), float(facts["baseline"])
    if HIGHER_IS_BETTER[metric]:
        return model >= baseline - 0.01
    return model <= baseline * 1.02


def run_table(table: Table, workdir: Path) -> Dict[str, object]:
    data = workdir / f"{table.name}.csv"
    frame = table.make()
    frame.to_csv(data, index=False, na_rep="NA")
    home = workdir / f"home-{table.name}"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cli.main", "run", "--data", str(data), "--label", table.label,
                           "--home", str(home)], cwd=REPO, capture_output=True, text=True, timeout=1800)
    facts = _parse(done.stdout + "\n" + done.stderr)
    facts.update(table=table.name, source=table.source, traits=table.traits, rows=len(frame),
                 columns=frame.shape[1], exit=done.returncode, seconds=round(time.monotonic() - started, 1))
    facts["meets_bar"] = _bar(facts)
    return facts


def _markdown(results: List[Dict[str, object]], head: Dict[str, str]) -> str:
    lines = [f"# Real tables, `mlops run --data F --label L` with default options ({head['at']}, {head['commit']})",
             "", f"Host: {head['host']}. Bar: AUC/accuracy >= the scikit-learn baseline - 0.01; RMSE/MAE <= 1.02x "
                 "the baseline's (both on the run's own eval split).", "",
             "| table | rows x cols | traits | task | pushed | gate metric | model | baseline | bar | s | why |",
             "|---|---|---|---|---|---|---:|---:|---|---:|---|"]
    for r in results:
        why = r.get("error") or ("" if r.get("blessed") else r.get("blessing_reason", ""))
        bar = {True: "met", False: "NOT met", None: "-"}[r["meets_bar"]]
        model = f"{r['model']:.4g}" if "model" in r else "-"
        baseline = f"{r['baseline']:.4g} ({r['baseline_model']})" if "baseline" in r else "-"
        lines.append(f"| {r['table']} | {r['rows']} x {r['columns']} | {r['traits']} | {r.get('task') or '-'} | "
                     f"{'yes' if r['pushed'] else 'NO'} | {r.get('metric', '-')} | {model} | {baseline} | {bar} | "
                     f"{r['seconds']} | {str(why)[:160]} |")
    pushed = sum(1 for r in results if r["pushed"])
    met = sum(1 for r in results if r["meets_bar"])
    lines += ["", f"Pushed: {pushed} of {len(results)}; bar met: {met} of {len(results)}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="NAME,... of the tables to run")
    parser.add_argument("--budget-seconds", type=float, default=3600, help="tables not started by then are skipped")
    args = parser.parse_args()
    chosen = [t for t in TABLES if not args.only or t.name in args.only.split(",")]
    started, results = time.monotonic(), []
    with tempfile.TemporaryDirectory(prefix="mlops-tables-") as temp:
        for table in chosen:
            if time.monotonic() - started > args.budget_seconds:
                print(f"{table.name}: skipped (budget)", flush=True)
                continue
            result = run_table(table, Path(temp))
            results.append(result)
            print(json.dumps(result), flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    head = {"at": time.strftime("%Y-%m-%d %H:%M"), "commit": commit,
            "host": f"{os.cpu_count()} CPUs, {os.uname().machine}, Python {sys.version.split()[0]}"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.only and (RESULTS / "tables.json").exists():  # rerun rows replace theirs in the last whole run
        earlier = json.loads((RESULTS / "tables.json").read_text())
        rerun = {r["table"]: r for r in results}
        results = [rerun.pop(r["table"], r) for r in earlier["tables"]] + list(rerun.values())
        head["at"] = f"{earlier['at']}; rerun {head['at']} at {head['commit']}: {args.only}"
        head["commit"] = earlier["commit"]
    (RESULTS / "tables.json").write_text(json.dumps({**head, "tables": results}, indent=1) + "\n")
    (RESULTS / "tables.md").write_text(_markdown(results, head))
    print(_markdown(results, head))


if __name__ == "__main__":
    main()
