"""`make bench` (suite part): the time of `make test` on a fresh clone of this checkout's HEAD, setup
excluded (the goal's terms): the clone links this checkout's two venvs, and make is told their stamps
are made (``-o``), so the Makefile's own test command runs as CI runs it. Goal: <= 15 min on this
machine. A loop of 10^7 additions is timed before and after, so a busy host shows in the figures.
Writes bench/results/suite.json and suite.md (earlier runs: docs/suite-times.md)."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
GOAL_S = 15 * 60
SLOWEST = 15
VENVS = (".venv", ".venv-airflow")
STAMP = ".setup-complete"
SUMMARY = re.compile(r"=+ (.*?) in ([\d.]+)s")
DURATION = re.compile(r"^([\d.]+)s (setup|call|teardown)\s+(\S+)")
COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")


def host_loop_s() -> float:
    """Seconds a fresh interpreter takes for 10^7 additions: ~0.8 s on a quiet machine here."""
    code = ("import time\nt = time.perf_counter()\ns = 0\nfor i in range(10 ** 7): s += i\n"
            "print(time.perf_counter() - t)")
    return round(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                      check=True).stdout), 2)


def read_pytest(output: str) -> Dict[str, object]:
    """pytest's counts and seconds (its last summary line) and the slowest tests it printed."""
    summaries = SUMMARY.findall(output)
    if not summaries:
        raise ValueError("no pytest summary line in the output")
    counts_text, seconds = summaries[-1]
    counts = {kind.rstrip("s") if kind.startswith("error") else kind: int(n) for n, kind in COUNT.findall(counts_text)}
    slowest = [{"seconds": float(m.group(1)), "phase": m.group(2), "test": m.group(3)}
               for m in map(DURATION.match, output.splitlines()) if m]
    failed = [line for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    return {"counts": counts, "pytest_s": float(seconds), "slowest": slowest[:SLOWEST], "failed": failed}


def run_suite(clone: Path) -> Dict[str, object]:
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    for venv in VENVS:
        if not (ROOT / venv / STAMP).exists():
            raise SystemExit(f"{ROOT / venv}: not set up; run `make setup airflow-setup` first")
        (clone / venv).symlink_to(ROOT / venv)
    made = [arg for venv in VENVS for arg in ("-o", f"{venv}/{STAMP}")]
    env = {**os.environ, "PYTEST_ADDOPTS": f"--durations={SLOWEST}"}
    started = time.perf_counter()
    done = subprocess.run(["make", *made, "test"], cwd=clone, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    output = done.stdout + done.stderr
    try:
        result = read_pytest(output)
    except ValueError:
        sys.stderr.write(output[-4000:])
        raise SystemExit(f"make test exited {done.returncode} without a pytest summary")
    return {"commit": commit, "exit_code": done.returncode, "wall_s": round(wall, 1), **result}


def markdown(report: Dict[str, object]) -> str:
    counts = ", ".join(f"{n} {kind}" for kind, n in report["counts"].items())
    met = "met" if report["pytest_s"] <= GOAL_S and report["exit_code"] == 0 else "not met"
    lines: List[str] = [
        "# The suite's time (`make test` on a fresh clone, setup excluded, 2 workers)", "",
        f"Goal: <= 15 min on this machine. At {report['commit']} ({report['measured']}, {report['cpus']} CPUs): "
        f"pytest **{report['pytest_s']:.1f} s ({report['pytest_s'] / 60:.1f} min)**, {counts}; `make test` "
        f"{report['wall_s']:.1f} s wall: {met}. Host: a loop of 10^7 additions took {report['host_loop_s'][0]} s "
        f"before and {report['host_loop_s'][1]} s after (~0.8 s when this machine is quiet).", "",
        f"The {len(report['slowest'])} slowest:", "", "| seconds | phase | test |", "|---:|---|---|"]
    lines += [f"| {row['seconds']:.1f} | {row['phase']} | `{row['test']}` |" for row in report["slowest"]]
    if report["failed"]:
        lines += ["", "Failed:", ""] + [f"- `{line}`" for line in report["failed"]]
    lines += ["", "Earlier runs, and how the time fell: docs/suite-times.md."]
    return "\n".join(lines) + "\n"


def main() -> int:
    before = host_loop_s()
    with tempfile.TemporaryDirectory(prefix="mlops-suite-") as tmp:
        report = run_suite(Path(tmp) / "clone")
    report = {"goal_s": GOAL_S, "cpus": os.cpu_count(), "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "host_loop_s": [before, host_loop_s()], **report}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "suite.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / "suite.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if report["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
