"""What `mlops run` shows while a pipeline runs: one line per component as it starts and ends
(status, seconds, a short result), a live epoch counter while a model trains, and nothing of
TensorFlow's, Beam's or absl's own output, which goes to ``<home>/logs/<name>/<run>.log``.

The component boundaries come from LocalDagRunner's own log records ("Component X is running." /
"is finished."), the epochs from ``components.progress_records.log_epoch``; both are read by a
logging handler in this process. A terminal gets a line rewritten in place; a pipe or a CI log
gets plain lines (epochs at most every EPOCH_LINE_SECONDS)."""
import contextlib
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, TextIO

from components.gate_metrics import OVERALL
from components.progress_records import PROGRESS_LOGGER
from core.config import RESOLVER_IDS, PipelineConfig
from core.run_report import RunReport

COMPONENT_EVENT = re.compile(r"^Component (\S+) is (running|finished)\.$")
EPOCH_LINE_SECONDS = 10.0  # non-interactive output: one epoch line per this many seconds at most
TFX_LOGGER = "absl"  # LocalDagRunner logs through absl


def _rows(split_rows: Dict[str, int]) -> str:
    return ", ".join(f"{split} {rows:,} rows" for split, rows in split_rows.items())


def _best(history: Dict[str, List[float]]) -> str:
    losses = history.get("val_loss") or history.get("loss") or []
    if not losses:
        return ""
    return f"{len(losses)} epochs, best val_loss {min(losses):.4f} (epoch {losses.index(min(losses)) + 1})"


def _gate(report: RunReport) -> str:
    overall = report.metrics.get(OVERALL, {})
    shown = [f"{report.metric_label(k)} {v:.4f}" for k, v in sorted(overall.items())
             if not k.endswith("_change") and k != "example_count"][:2]
    verdict = {True: "blessed", False: "not blessed", None: ""}[report.blessed]
    return "; ".join(p for p in (verdict, ", ".join(shown)) if p)


def component_result(report: RunReport, node: str) -> str:
    """A few words on what ``node`` produced in this run, from what the report read back."""
    if node.endswith("ExampleGen"):
        span = report.input_properties.get("span")
        return f"span {span}" if span else ""
    if node == "StatisticsGen":
        return _rows(report.split_rows)
    if node.endswith("SchemaGen") and report.schema_features is not None:
        return f"{report.schema_features} features"
    if node == "ExampleValidator":
        named = sorted({f for features in report.anomalies_found.values() for f in features})
        return f"anomalies in {', '.join(named)}" if named else "no anomalies"
    if node == "Trainer":
        workers = report.model_info.get("replicas_in_sync", 1)
        return _best(report.history) + (f" on {workers} workers" if workers > 1 else "")
    if node == "Evaluator":
        return _gate(report)
    if node == "Pusher":
        if report.pushed_path:
            return f"version {Path(report.pushed_path).name}" + ("" if report.pushed_now else " (unchanged)")
        return "nothing pushed"
    if node == "EdgeExport":
        variants = report.edge.get("variants", {})
        shipped = [name for name, entry in variants.items() if entry.get("accepted")]
        return f"{len(shipped)} of {len(variants)} TF Lite variants shipped" if variants else ""
    return ""


class ProgressLines(logging.Handler):
    """Turns component and epoch log records into progress lines on ``stream``."""

    def __init__(self, stream: TextIO, interactive: bool, clock: Callable[[], float] = time.monotonic):
        super().__init__(logging.INFO)
        self.stream, self.interactive, self.clock = stream, interactive, clock
        self.read_report: Callable[[], RunReport] = lambda: RunReport(pipeline="")  # expect() sets it
        self.log_path: Optional[Path] = None
        self.nodes: List[str] = []
        self.current: Optional[str] = None
        self.started = 0.0
        self.last_epoch_line = 0.0
        self.lines: List[str] = []  # every finished line, in order (what a test or a log reader sees)
        self.timings: List[Dict[str, object]] = []  # components and steps: name, kind, state, seconds

    def expect(self, nodes: Sequence[str], read_report: Callable[[], RunReport]) -> None:
        """The pipeline's components in run order (resolvers, which do no work, are not shown), and
        how to read the run back from ML Metadata when one ends (its state and short result)."""
        self.nodes = [n for n in nodes if n not in RESOLVER_IDS]
        self.read_report = read_report

    def _position(self, node: str) -> str:
        total = len(self.nodes)
        where = f"[{self.nodes.index(node) + 1}/{total}]" if node in self.nodes else ""
        return where.ljust(max(8, len(f"[{total}/{total}] ")))  # steps outside the pipeline: indented alike

    def _write(self, text: str, final: bool) -> None:
        if self.interactive:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        elif final:
            self.stream.write(text + "\n")
        self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.name == PROGRESS_LOGGER and hasattr(record, "epoch"):
                self.epoch(record.epoch, record.epochs, record.metrics, record.stage)
                return
            match = COMPONENT_EVENT.match(record.getMessage())
            if match and match.group(1) not in RESOLVER_IDS:
                (self.start if match.group(2) == "running" else self.finish)(match.group(1))
        except Exception:  # a progress line must never fail the run
            self.handleError(record)

    def start(self, node: str) -> None:
        self.current, self.started, self.last_epoch_line = node, self.clock(), self.clock()
        self._write(f"{self._position(node)}{node} ...", final=False)

    def epoch(self, epoch: int, epochs: int, metrics: Dict[str, float], stage: str = "") -> None:
        node = self.current or "training"
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        where = f"{stage} " if stage else ""
        elapsed = self.clock() - self.started
        text = f"{self._position(node)}{node} {where}epoch {epoch}/{epochs}  {shown}  {elapsed:.0f} s"
        if self.interactive:
            self._write(text, final=False)
        elif self.clock() - self.last_epoch_line >= EPOCH_LINE_SECONDS:
            self.last_epoch_line = self.clock()
            self._write("  " + text, final=True)

    def finish(self, node: str, state: Optional[str] = None) -> None:
        seconds = self.clock() - self.started if self.current == node else 0.0
        report = self.read_report()
        state = state or report.state_of(node) or "?"
        result = component_result(report, node) if state in ("COMPLETE", "CACHED") else ""
        line = f"{self._position(node)}{node:<18} {state:<9} {seconds:7.1f} s  {result}".rstrip()
        self.lines.append(line)
        self.timings.append({"name": node, "kind": "component", "state": state, "seconds": round(seconds, 3)})
        self._write(line, final=True)
        self.current = None

    def step(self, name: str, outcome: str, seconds: float) -> None:
        """A line for work after the pipeline (the baseline, MLflow tracking)."""
        line = f"{self._position(name)}{name:<28} {seconds:7.1f} s  {outcome}".rstrip()
        self.lines.append(line)
        self.timings.append({"name": name, "kind": "step", "seconds": round(seconds, 3)})
        self._write(line, final=True)

    def say(self, text: str) -> None:
        """A line of its own, now (e.g. that the run waits for another)."""
        self.lines.append(text)
        self._write(text, final=True)

    @contextlib.contextmanager
    def timed(self, name: str, outcome: str = "ready") -> Iterator[None]:
        """A step line for the block, written when it ends without an error."""
        started = self.clock()
        yield
        self.step(name, outcome, self.clock() - started)

    def close_run(self) -> None:
        """A component that raised never logs "finished": its line is written here, as FAILED."""
        if self.current:
            self.finish(self.current, state="FAILED")


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[TextIO]:
    """File descriptors 1 and 2 (Python, C++ and Beam workers alike) into ``path``; yields a stream on
    the original stdout for the progress lines. Everything is put back on exit."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved_out), "w", buffering=1)
    log = open(path, "ab", buffering=0)
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        yield terminal
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        for fd in (saved_out, saved_err):
            os.close(fd)
        terminal.close()
        log.close()


def process_started_at() -> Optional[float]:
    """When this process started (Unix seconds, 10 ms grain; Linux's /proc), or None elsewhere."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def write_timings(path: Path, progress: ProgressLines, command_started: float, pipeline_seconds: float,
                  outcome: Dict[str, str]) -> None:
    """The run's wall time by part, beside its log: the process's start-up before the command (the
    imports of the CLI and of what configuring reads), each component and step, and the rest; and
    ``outcome``, what its MLflow tags say (`mlops status` reads it for a run with --no-tracking)."""
    started = process_started_at()
    ended = time.time()
    parts = sum(t["seconds"] for t in progress.timings)
    document = {"process_s": round(ended - started, 3) if started else None,
                "before_command_s": round(command_started - started, 3) if started else None,
                "command_s": round(ended - command_started, 3), "pipeline_s": round(pipeline_seconds, 3),
                "components_and_steps_s": round(parts, 3), "timings": progress.timings,
                "started_at": round(command_started, 3), "outcome": dict(outcome)}
    path.write_text(json.dumps(document, indent=1) + "\n")


def log_file(config: PipelineConfig) -> Path:
    folder = config.home.logs(config.name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"  # two runs may start in one second


@contextlib.contextmanager
def watched(config: PipelineConfig, verbose: bool = False) -> Iterator[ProgressLines]:
    """Progress lines while the block runs. Without ``verbose`` the libraries' output goes to the
    run's log file (``progress.log_path``); with it, both go to the terminal as they come."""
    from absl import logging as absl_logging

    sources = [logging.getLogger(TFX_LOGGER), logging.getLogger(PROGRESS_LOGGER)]
    previous = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)  # the component records; the file holds the rest
    logging.getLogger(PROGRESS_LOGGER).setLevel(logging.INFO)
    with contextlib.ExitStack() as stack:
        log_path = None if verbose else log_file(config)
        stream = sys.stdout if verbose else stack.enter_context(_output_to(log_path))
        progress = ProgressLines(stream, interactive=stream.isatty())
        progress.log_path = log_path
        for logger in sources:
            logger.addHandler(progress)
        try:
            yield progress
        finally:
            progress.close_run()
            for logger in sources:
                logger.removeHandler(progress)
            absl_logging.set_verbosity(previous)
