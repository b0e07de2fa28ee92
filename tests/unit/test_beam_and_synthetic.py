"""Beam pipeline args from the command line, and the synthetic data generator for scale runs."""
import csv

import pytest

from cli.main import main
from core.config import LOCAL_BEAM_ARGS, PROJECT_SETUP, beam_args
from core.home import Home
from pipelines.inputs.synthetic import LABEL, columns, write_transactions
from tests.helpers import run_cli_config, write_transactions_csv


def test_local_default_is_one_in_memory_worker():
    assert LOCAL_BEAM_ARGS == ()  # DirectRunner's defaults; non-empty args make TFX build an sdist per component
    assert beam_args("multi_processing", 2) == ("--direct_running_mode=multi_processing", "--direct_num_workers=2",
                                                f"--setup_file={PROJECT_SETUP}")


def test_another_runner_gets_only_the_passed_args():
    dataflow = ("--runner=DataflowRunner", "--project=p", "--region=europe-west1", "--temp_location=gs://b/tmp")
    assert beam_args("in_memory", 1, dataflow) == dataflow
    assert beam_args("in_memory", 1, ("--runner=DirectRunner",))[:1] == ("--runner=DirectRunner",)
    assert beam_args("multi_processing", 2, ("--extra_packages=dist/mine.tar.gz",))[-1] == \
        "--extra_packages=dist/mine.tar.gz"  # the user's own dependency flag stands alone


@pytest.mark.parametrize("mode, workers, extra", [("multi_processing", 2, ()), ("multi_threading", 2, ()),
                                                  ("in_memory", 1, ("--runner=DirectRunner",))])
def test_tfx_packages_nothing_for_a_local_runner(monkeypatch, mode, workers, extra):
    """TFX's Beam executors call make_beam_dependency_flags before every component: with DirectRunner
    args it must find a dependency flag and build no sdist (3 s and 42 MB in /tmp each)."""
    from tfx.utils import dependency_utils

    def refuse():
        raise AssertionError("TFX built an sdist of itself")

    monkeypatch.setattr(dependency_utils, "build_ephemeral_package", refuse)
    args = list(beam_args(mode, workers, extra))
    assert dependency_utils.make_beam_dependency_flags(args) == args


def test_cli_builds_beam_args_and_refuses_bad_ones(tmp_path, capsys):
    data = write_transactions_csv(tmp_path / "t.csv")
    config = run_cli_config("--data", str(data), "--label", "is_fraud", "--task", "binary", "--beam-mode",
                            "multi_processing", "--beam-workers", "2", "--beam-arg=--direct_running_mode_hint=x",
                            home=tmp_path / "home")
    assert config.beam_args == ("--direct_running_mode=multi_processing", "--direct_num_workers=2",
                                "--direct_running_mode_hint=x", f"--setup_file={PROJECT_SETUP}")
    assert config.as_params()["beam_args"].startswith("--direct_running_mode=multi_processing")
    code = main(["run", "--data", str(data), "--label", "is_fraud", "--task", "binary", "--beam-workers", "0",
                 "--home", str(tmp_path / "home")])
    assert code == 2 and "Beam workers 0: need at least 1" in capsys.readouterr().err


def test_generator_writes_the_rows_asked_for_with_gaps_and_both_classes(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "big.csv"), "--rows", "120001", "--seed", "3"]) == 0
    assert "--label is_fraud --task binary" in capsys.readouterr().out
    with (tmp_path / "big.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 120001 and list(rows[0]) == columns(12)
    positives = sum(int(r[LABEL]) for r in rows) / len(rows)
    assert 0.05 < positives < 0.4
    assert any(r["x00"] == "" for r in rows) and any(r["segment"] == "" for r in rows)
    assert all(r["x05"] != "" for r in rows)
    with pytest.raises(ValueError, match="rows=0"):
        write_transactions(tmp_path / "none.csv", 0)


def test_schedule_prints_a_cron_line_that_runs_the_same_command(tmp_path, capsys, monkeypatch):
    import shlex
    import subprocess

    from ops.schedule import merge

    monkeypatch.chdir(tmp_path)
    data = write_transactions_csv(tmp_path / "t.csv")
    home = tmp_path / "home"
    assert main(["schedule", "--cron", "*/30 * * * *", "--promote", "--home", str(home), "--", "--data", "t.csv",
                 "--label", "is_fraud", "--task", "binary", "--hparam", "epochs=2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("*/30 * * * * cd ") and line.endswith("# mlops-schedule:t")
    assert f"--data {data}" in line and f"promote t --home {home}" in line and "flock -n" in line
    shell = shlex.split(line.split(" ", 5)[5].rsplit(" # ", 1)[0])
    inner = shell[shell.index("-c") + 1]
    assert subprocess.run(["sh", "-n", "-c", inner]).returncode == 0  # valid shell
    # a reinstall replaces the pipeline's earlier entry and keeps everything else
    assert merge("0 1 * * * backup\nold # mlops-schedule:t\n", line, "t") == f"0 1 * * * backup\n{line}\n"


def test_a_schedule_entry_works_on_a_new_home_names_the_run_as_run_does_and_keeps_the_stores(tmp_path, capsys,
                                                                                                 monkeypatch):
    """A probe's entries failed: flock's lock file lay in a home not yet made (exit 66, no log);
    'tx sales.csv.gz' ran as tx_sales but was promoted as 'tx sales.csv'; --metadata-uri was dropped,
    a --tracking-uri reached the run but not the promotion; cron read a % as a newline."""
    import shlex

    monkeypatch.chdir(tmp_path)
    write_transactions_csv(tmp_path / "tx sales.csv.gz")
    home = tmp_path / "new home"
    assert main(["schedule", "--promote", "--home", str(home), "--metadata-uri", "mysql://u:p@127.0.0.1:3306/mlmd",
                 "--", "--data", "tx sales.csv.gz", "--label", "is_fraud", "--na-values", "%,-",
                 "--tracking-uri", "http://127.0.0.1:5000"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.endswith("# mlops-schedule:tx_sales") and "--na-values %,-" not in line  # cron: \% is a percent
    command = shlex.split(line.split(" ", 5)[5].rsplit(" # ", 1)[0].replace("\\%", "%"))
    assert command.index("mkdir") < command.index("flock")  # the home (and the lock's folder) first
    inner = command[command.index("-c") + 1]
    run, promote = inner.split(" && ")
    assert "--metadata-uri mysql://u:p@127.0.0.1:3306/mlmd" in run and "--na-values %,-" in run
    assert promote.split()[1:3] == ["promote", "tx_sales"] and "--tracking-uri http://127.0.0.1:5000" in promote


def test_a_failed_scheduled_attempt_is_logged_with_its_time_and_status_and_status_alarms_on_it(tmp_path, capsys,
                                                                                                   monkeypatch):
    """A probe's nightly run stopped by bad data before any pipeline ran: the log had the line but
    no time, and `mlops status` still showed the last good run."""
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    from ops.schedule import last_failure
    from ops.status import _schedule_alarms

    monkeypatch.chdir(tmp_path)
    write_transactions_csv(tmp_path / "t.csv")
    home = tmp_path / "home"
    assert main(["schedule", "--home", str(home), "--", "--data", "t.csv", "--label", "is_fraud"]) == 0
    line = capsys.readouterr().out.strip()
    fake = tmp_path / "mlops"  # the run: says why it stopped, exits 2
    fake.write_text("#!/bin/sh\necho \"mlops: error: t.csv: column 'amount' is numeric but line 3 holds '12k'\"\n"
                    "exit 2\n")
    fake.chmod(0o755)
    command = line.split(" ", 5)[5].rsplit(" # ", 1)[0].replace("\\%", "%")
    command = command.replace(str(Path(sys.executable).with_name("mlops")), str(fake))
    subprocess.run(["sh", "-c", command], check=False)
    when, status, said = last_failure(home, "t")
    assert status == 2 and said.endswith("line 3 holds '12k'") and when.startswith("20")
    assert _schedule_alarms(Home(home), "t") == [
        f"the scheduled run at {when} exited 2: {said} ({home / 'logs' / 'schedule-t.log'})"]
    assert shlex.split(command)[0] == "cd"


def test_schedule_refuses_bad_cron_and_run_arguments(capsys):
    assert main(["schedule", "--cron", "daily", "--", "fraud"]) == 2
    assert "five fields" in capsys.readouterr().err
    assert main(["schedule", "--", "fraud", "--nope"]) == 2
    assert "would not parse" in capsys.readouterr().err
    assert main(["schedule", "--", "--data", "no/such.csv", "--label", "y"]) == 2
    assert "--data no/such.csv: not found; the scheduled run would fail every time" in capsys.readouterr().err
