"""`mlops schedule`: a cron entry that runs a pipeline on a schedule on this machine (optionally
followed by the promotion gate), one run at a time (flock), logging to <home>/logs/. Printed by
default; ``--install`` puts it in the user's crontab, replacing the entry of the same pipeline."""
import shlex
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

MARKER = "# mlops-schedule:"


class ScheduleError(Exception):
    pass


ATTEMPT = "== mlops schedule:"  # the log's lines around each attempt


def schedule_log(home: Path, name: str) -> Path:
    return home / "logs" / f"schedule-{name}.log"


def last_failure(home: Path, name: str) -> Optional[Tuple[str, int, str]]:
    """(when, exit status, its last line of output) of the newest scheduled attempt when it failed,
    else None."""
    path = schedule_log(home, name)
    if not path.is_file():
        return None
    lines = path.read_text(errors="replace").splitlines()[-400:]
    ends = [i for i, line in enumerate(lines) if line.startswith(ATTEMPT) and " exit " in line]
    if not ends:
        return None
    when, _, status = lines[ends[-1]][len(ATTEMPT):].strip().partition(" exit ")
    if status.strip() in ("", "0"):
        return None
    said = next((line for line in reversed(lines[:ends[-1]]) if line.strip() and not line.startswith(ATTEMPT)), "")
    return when, int(status) if status.strip().isdigit() else -1, said.strip()


def validate_cron(expression: str) -> str:
    fields = expression.split()
    if len(fields) != 5 and not (len(fields) == 1 and fields[0].startswith("@")):
        raise ScheduleError(f"--cron {expression!r}: five fields (minute hour day month weekday) or @daily etc.")
    return " ".join(fields)


def entry(name: str, cron: str, run_args: Sequence[str], home: Path, workdir: Path, promote: bool,
          stores: Sequence[str] = (), promote_stores: Sequence[str] = ()) -> str:
    """One crontab line: cd, make the home's log folder, lock (in the home: it exists now), run
    [&& promote], append to the log. ``stores``: the team stores' options the run gets beside
    ``run_args`` (--metadata-uri); ``promote_stores``: the promotion's (the run's --tracking-uri)."""
    mlops = str(Path(sys.executable).with_name("mlops"))
    log = schedule_log(home, name)
    lock = home / f".schedule-{name}.lock"
    run = " ".join(shlex.quote(a) for a in [mlops, "run", *run_args, *stores, "--home", str(home)])
    command = run + (" && " + " ".join(shlex.quote(a) for a in [mlops, "promote", name, "--home", str(home),
                                                                 *promote_stores])
                     if promote else "")
    # each attempt between two dated lines, the second with its exit status (`mlops status` reads it:
    # a run that bad data stops before any pipeline starts leaves no other trace)
    stamp = 'date -u +%Y-%m-%dT%H:%M:%SZ'
    shell = (f'{{ echo "{ATTEMPT} $({stamp}) started"; {command}; rc=$?; echo "{ATTEMPT} $({stamp}) exit $rc"; }}'
             f" >> {shlex.quote(str(log))} 2>&1")
    line = (f"cd {shlex.quote(str(workdir))} && mkdir -p {shlex.quote(str(log.parent))} && "
            f"flock -n {shlex.quote(str(lock))} sh -c {shlex.quote(shell)}")
    return f"{validate_cron(cron)} {line.replace('%', chr(92) + '%')} {MARKER}{name}"  # cron reads % as a newline


def merge(crontab: str, line: str, name: str) -> str:
    """The crontab with ``line`` replacing this pipeline's earlier entry (other lines kept)."""
    kept: List[str] = [x for x in crontab.splitlines() if not x.endswith(f"{MARKER}{name}")]
    return "\n".join([*kept, line]) + "\n"


def install(line: str, name: str) -> None:
    try:
        current = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    except FileNotFoundError:
        raise ScheduleError(f"no `crontab` on this machine: add this line to your scheduler: {line}") from None
    existing = current.stdout if current.returncode == 0 else ""  # exit 1: no crontab yet
    result = subprocess.run(["crontab", "-"], input=merge(existing, line, name), capture_output=True, text=True)
    if result.returncode != 0:
        raise ScheduleError(f"crontab refused the entry: {result.stderr.strip()}")
