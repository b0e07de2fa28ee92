"""`mlops run`'s progress lines: component records in, one line per component out, epochs throttled
on plain output and rewritten in place on a terminal, a failed component named, the libraries'
output moved into the log file at the file-descriptor level."""
import io
import logging
import os
import subprocess
import sys

from components.progress_records import PROGRESS_LOGGER, log_epoch
from core.run_report import ComponentRun, RunReport
from pipelines.runners.progress import EPOCH_LINE_SECONDS, ProgressLines, component_result

NODES = ["CsvExampleGen", "StatisticsGen", "baseline_resolver", "Trainer", "Evaluator", "Pusher"]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _report(**fields) -> RunReport:
    report = RunReport(pipeline="p", components=[ComponentRun(n, "COMPLETE", 1.0, i) for i, n in enumerate(NODES)])
    for key, value in fields.items():
        setattr(report, key, value)
    return report


def _progress(interactive=False, report=None):
    stream, clock = io.StringIO(), Clock()
    progress = ProgressLines(stream, interactive=interactive, clock=clock)
    progress.expect(NODES, lambda: report or _report())
    return progress, stream, clock


def _record(message: str, name: str = "absl") -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, message, (), None)


def test_one_line_per_component_from_the_runners_records_and_none_for_resolvers():
    report = _report(split_rows={"train": 180, "eval": 60}, history={"val_loss": [0.5, 0.3, 0.4]})
    progress, stream, clock = _progress(report=report)
    for node, seconds in (("CsvExampleGen", 1.5), ("baseline_resolver", 0.0), ("StatisticsGen", 2.0),
                          ("Trainer", 12.25)):
        progress.emit(_record(f"Component {node} is running."))
        clock.now += seconds
        progress.emit(_record(f"Component {node} is finished."))
    progress.emit(_record("Going to run a new execution 7"))  # other chatter: no line
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and lines == progress.lines
    assert lines[0].startswith("[1/5]") and "CsvExampleGen" in lines[0] and "1.5 s" in lines[0]
    assert "train 180 rows, eval 60 rows" in lines[1]
    assert lines[2].startswith("[3/5]") and "12.2 s" in lines[2]
    assert "3 epochs, best val_loss 0.3000 (epoch 2)" in lines[2]


def test_epochs_on_plain_output_are_throttled_and_on_a_terminal_rewritten_in_place():
    progress, stream, clock = _progress()
    progress.start("Trainer")
    for epoch in range(1, 31):
        clock.now += 1.0
        progress.epoch(epoch, 30, {"loss": 0.5, "val_loss": 0.4})
    epoch_lines = [line for line in stream.getvalue().splitlines() if "epoch" in line]
    assert len(epoch_lines) == 30 // EPOCH_LINE_SECONDS and "\r" not in stream.getvalue()
    assert "Trainer epoch 10/30  loss 0.5000  val_loss 0.4000  10 s" in epoch_lines[0]

    progress, stream, clock = _progress(interactive=True)
    progress.start("Trainer")
    progress.epoch(1, 30, {"loss": 0.5}, stage="trial 2/6")
    progress.finish("Trainer")
    text = stream.getvalue()
    assert text.count("\r\033[K") == 3 and "Trainer trial 2/6 epoch 1/30" in text and text.count("\n") == 1


def test_the_epoch_records_reach_the_handler_through_logging():
    progress, stream, _ = _progress(interactive=True)
    logger = logging.getLogger(PROGRESS_LOGGER)
    logger.setLevel(logging.INFO)
    logger.addHandler(progress)
    try:
        progress.start("Trainer")
        log_epoch(3, 9, {"val_loss": 0.25})
    finally:
        logger.removeHandler(progress)
    assert "Trainer epoch 3/9  val_loss 0.2500" in stream.getvalue()


def test_a_component_that_raised_is_written_as_failed():
    progress, stream, clock = _progress()
    progress.emit(_record("Component Trainer is running."))
    clock.now += 4.0
    progress.close_run()
    progress.close_run()  # once only
    assert len(progress.lines) == 1 and "Trainer" in progress.lines[0] and "FAILED" in progress.lines[0]
    assert "4.0 s" in progress.lines[0]


def test_short_results_say_what_each_component_made():
    report = _report(schema_features=14, anomalies_found={"train": [], "eval": ["segment"]},
                     metrics={"overall": {"auc": 0.91, "auc_change": 0.01, "example_count": 60.0}}, blessed=True,
                     pushed_path="/h/serving/p/1700000000", pushed_now=False, input_properties={"span": 3},
                     edge={"variants": {"float32": {"accepted": True}, "int8": {"accepted": False}}})
    assert component_result(report, "SchemaGen") == "14 features"
    assert component_result(report, "ExampleValidator") == "anomalies in segment"
    assert component_result(_report(anomalies_found={"eval": []}), "ExampleValidator") == "no anomalies"
    assert component_result(report, "Evaluator") == "blessed; auc 0.9100"
    assert component_result(report, "Pusher") == "version 1700000000 (unchanged)"
    assert component_result(_report(), "Pusher") == "nothing pushed"
    assert component_result(report, "CsvExampleGen") == "span 3"
    assert component_result(report, "EdgeExport") == "1 of 2 TF Lite variants shipped"
    assert component_result(report, "Transform") == ""
    series = _report(metrics={"overall": {"mean_absolute_error": 0.8, "mean_squared_error": 1.2}}, blessed=True,
                     model_info={"forecast": {"base": "drift"}})  # a user's series: the windows' scale, a MASE
    assert component_result(series, "Evaluator") == "blessed; MASE (window-scaled MAE) 0.8000, window-scaled MSE 1.2000"


def test_output_moves_into_the_log_file_for_python_cpp_and_child_processes(tmp_path):
    """Run in a child so the test's own capture is not in the way: fd 1 and 2 (as C++ and Beam
    workers write them) and Python's streams all land in the file; the progress stream does not."""
    code = f"""
import os, subprocess, sys
sys.path.insert(0, {os.getcwd()!r})
from pipelines.runners.progress import _output_to
with _output_to(__import__('pathlib').Path({str(tmp_path / 'run.log')!r})) as terminal:
    print('python stdout'); print('python stderr', file=sys.stderr)
    os.write(1, b'fd one\\n'); os.write(2, b'fd two\\n')
    subprocess.run([sys.executable, '-c', 'print("child process")'])
    terminal.write('progress line\\n')
print('after')
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "progress line\nafter\n" and done.stderr == ""
    log = (tmp_path / "run.log").read_text()
    for text in ("python stdout", "python stderr", "fd one", "fd two", "child process"):
        assert text in log
    assert "progress line" not in log
