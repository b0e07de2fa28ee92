"""`mlops schedule`: a cron entry that runs a pipeline on a schedule on this machine (optionally
followed by the promotion gate), one run at a time (flock), logging to <home>/logs/. Printed by
default; ``--install`` puts it in the user's crontab, replacing the entry of the same pipeline."""
import shlex
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

MARKER = "# mlops-schedule:"


class ScheduleError(Exception):
    pass


def validate_cron(expression: str) -> str:
    fields = expression.split()
    if len(fields) != 5 and not (len(fields) == 1 and fields[0].startswith("@")):
        raise ScheduleError(f"--cron {expression!r}: five fields (minute hour day month weekday) or @daily etc.")
    return " ".join(fields)


def entry(name: str, cron: str, run_args: Sequence[str], home: Path, workdir: Path, promote: bool) -> str:
    """One crontab line: cd, lock, run [&& promote], append to the log."""
    mlops = str(Path(sys.executable).with_name("mlops"))
    log = home / "logs" / f"schedule-{name}.log"
    lock = home / f".schedule-{name}.lock"
    run = " ".join(shlex.quote(a) for a in [mlops, "run", *run_args, "--home", str(home)])
    command = run + (f" && {shlex.quote(mlops)} promote {shlex.quote(name)} --home {shlex.quote(str(home))}"
                     if promote else "")
    shell = f"mkdir -p {shlex.quote(str(log.parent))} && {{ {command}; }} >> {shlex.quote(str(log))} 2>&1"
    return (f"{validate_cron(cron)} cd {shlex.quote(str(workdir))} && flock -n {shlex.quote(str(lock))} "
            f"sh -c {shlex.quote(shell)} {MARKER}{name}")


def merge(crontab: str, line: str, name: str) -> str:
    """The crontab with ``line`` replacing this pipeline's earlier entry (other lines kept)."""
    kept: List[str] = [x for x in crontab.splitlines() if not x.endswith(f"{MARKER}{name}")]
    return "\n".join([*kept, line]) + "\n"


def install(line: str, name: str) -> None:
    try:
        current = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    except FileNotFoundError:
        raise ScheduleError("no `crontab` on this machine: add the printed line to your scheduler") from None
    existing = current.stdout if current.returncode == 0 else ""  # exit 1: no crontab yet
    result = subprocess.run(["crontab", "-"], input=merge(existing, line, name), capture_output=True, text=True)
    if result.returncode != 0:
        raise ScheduleError(f"crontab refused the entry: {result.stderr.strip()}")
