"""Runners by name (core.beam_runners): each runner's flags become the options Beam itself parses
(checked through Beam's PipelineOptions views, for the runners that cannot run here: Flink and
Spark download job-server jars at run time, Dataflow needs a cloud project), each names this
project as its workers' dependency so TFX builds no sdist of itself, and a missing or stray option
is one line, exit 2."""
import pytest
from apache_beam.options.pipeline_options import (
    FlinkRunnerOptions,
    GoogleCloudOptions,
    PipelineOptions,
    PortableOptions,
    SetupOptions,
    SparkRunnerOptions,
    StandardOptions,
    WorkerOptions,
)

from cli.main import main
from core.beam_runners import BeamOptions, RunnerError, pipeline_args
from core.config import PROJECT_SETUP
from ops.beam_job_service import sdk_workers


def _parsed(**options) -> PipelineOptions:
    return PipelineOptions(list(pipeline_args(BeamOptions(**options))))


def test_portable_with_a_worker_pool():
    options = _parsed(runner="portable", job_endpoint="127.0.0.1:8099", worker_pool="127.0.0.1:50000",
                      beam_workers=2)
    portable = options.view_as(PortableOptions)
    assert options.view_as(StandardOptions).runner == "PortableRunner"
    assert (portable.job_endpoint, portable.environment_type, portable.environment_config) == \
        ("127.0.0.1:8099", "EXTERNAL", "127.0.0.1:50000")
    assert int(options.view_as(PortableOptions).sdk_worker_parallelism) == 2  # SDK workers per node (Beam: a str)
    assert sdk_workers(options) == 2  # what our job service runs the job on
    assert options.view_as(SetupOptions).setup_file == str(PROJECT_SETUP)


@pytest.mark.parametrize("given, workers", [(None, 1), ("1", 1), ("3", 3), ("0", 1), ("-2", 1), ("many", 1)])
def test_the_job_services_sdk_worker_count(given, workers):
    flags = [f"--sdk_worker_parallelism={given}"] if given is not None else []
    assert sdk_workers(PipelineOptions(flags)) == workers


def test_flink_with_a_container_image_as_the_dependency():
    options = _parsed(runner="flink", flink_master="flink-jm:8081", sdk_container_image="registry/mlops:1",
                      environment_type="docker", beam_workers=4)
    flink = options.view_as(FlinkRunnerOptions)
    assert options.view_as(StandardOptions).runner == "FlinkRunner"
    assert (flink.flink_master, flink.parallelism) == ("flink-jm:8081", 4)
    assert options.view_as(PortableOptions).environment_type == "DOCKER"
    assert options.view_as(WorkerOptions).sdk_container_image == "registry/mlops:1"
    assert options.view_as(SetupOptions).setup_file is None  # the image holds the project


def test_spark():
    options = _parsed(runner="spark", spark_master="spark://master:7077", worker_pool="10.0.0.5:50000")
    assert options.view_as(StandardOptions).runner == "SparkRunner"
    assert options.view_as(SparkRunnerOptions).spark_master_url == "spark://master:7077"
    assert options.view_as(PortableOptions).environment_config == "10.0.0.5:50000"


def test_dataflow_and_the_rest_through_beam_arg():
    options = _parsed(runner="dataflow", project="p", region="europe-west1", temp_location="gs://b/tmp",
                      beam_args=("--max_num_workers=10",))
    cloud = options.view_as(GoogleCloudOptions)
    assert options.view_as(StandardOptions).runner == "DataflowRunner"
    assert (cloud.project, cloud.region, cloud.temp_location) == ("p", "europe-west1", "gs://b/tmp")
    assert options.view_as(WorkerOptions).max_num_workers == 10
    assert options.view_as(WorkerOptions).num_workers is None  # autoscaled unless --beam-workers says
    assert options.view_as(SetupOptions).setup_file == str(PROJECT_SETUP)


def test_a_user_dependency_flag_replaces_ours():
    args = pipeline_args(BeamOptions(runner="portable", job_endpoint="h:1", worker_pool="h:2",
                                     beam_args=("--extra_packages=dist/mine.tar.gz",)))
    assert not any(a.startswith("--setup_file") for a in args) and args[-1] == "--extra_packages=dist/mine.tar.gz"


@pytest.mark.parametrize("options", [
    BeamOptions(runner="portable", job_endpoint="h:1", worker_pool="h:2"),
    BeamOptions(runner="flink", flink_master="h:8081", sdk_container_image="img"),
    BeamOptions(runner="spark", spark_master="spark://h:7077"),
    BeamOptions(runner="dataflow", project="p", region="r", temp_location="gs://b/t"),
    BeamOptions(beam_mode="multi_processing", beam_workers=2),
])
def test_tfx_builds_no_sdist_of_itself_for_any_runner(monkeypatch, options):
    """TFX's Beam executors call make_beam_dependency_flags before every component: it must find
    our dependency flag and leave the args as they are (no tfx_ephemeral sdist in /tmp)."""
    from tfx.utils import dependency_utils

    def refuse():
        raise AssertionError("TFX built an sdist of itself")

    monkeypatch.setattr(dependency_utils, "build_ephemeral_package", refuse)
    args = list(pipeline_args(options))
    assert dependency_utils.make_beam_dependency_flags(args) == args


@pytest.mark.parametrize("options, message", [
    (BeamOptions(runner="dataflow", project="p"), "--runner dataflow needs --region, --temp-location"),
    (BeamOptions(runner="portable"), "--runner portable needs --job-endpoint"),
    (BeamOptions(runner="flink"), "--runner flink needs --flink-master"),
    (BeamOptions(runner="spark", spark_master="master:7077"), "give spark://HOST:PORT"),
    (BeamOptions(runner="direct", job_endpoint="h:1"), "--job-endpoint: not an option of --runner direct"),
    (BeamOptions(runner="portable", job_endpoint="h:1", worker_pool="h:2", environment_type="DOCKER"),
     "not both"),
    (BeamOptions(runner="portable", job_endpoint="h:1", environment_type="EXTERNAL"), "needs --environment-config"),
    (BeamOptions(runner="portable", job_endpoint="h:1", beam_mode="multi_processing"), "a DirectRunner option"),
    (BeamOptions(runner="flink", flink_master="h:1", beam_args=("--runner=SparkRunner",)), "give one runner"),
])
def test_options_a_runner_cannot_run_with_are_one_line(options, message):
    with pytest.raises(RunnerError, match=message):
        pipeline_args(options)


@pytest.mark.parametrize("command", [
    ["run", "--runner", "dataflow", "--project", "p"],
    ["score", "fraud", "--data", "x.csv", "--output", "out", "--runner", "portable"],
    ["skew", "fraud", "--runner", "flink"],
])
def test_the_commands_refuse_a_runner_without_its_options(tmp_path, capsys, command):
    code = main([*command, "--home", str(tmp_path / "home")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and f"--runner {command[command.index('--runner') + 1]} needs" \
        in err, err
    assert not (tmp_path / "home" / "metadata.sqlite").exists()


def test_a_job_service_or_pool_that_does_not_answer_stops_the_command_at_once(tmp_path, capsys):
    """Checked before any work: otherwise Beam waits 60 s, then fails with a bare FutureTimeoutError."""
    import socket

    from components.ports import free_port
    from core.beam_runners import ServiceUnreachable, check_services

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        job = f"127.0.0.1:{listening.getsockname()[1]}"
        check_services(pipeline_args(BeamOptions(runner="portable", job_endpoint=job)))
        closed = f"127.0.0.1:{free_port()}"
        with pytest.raises(ServiceUnreachable, match=f"--worker-pool {closed}: nothing answers"):
            check_services(pipeline_args(BeamOptions(runner="portable", job_endpoint=job, worker_pool=closed)))
    code = main(["run", "--runner", "portable", "--job-endpoint", closed, "--worker-pool", closed,
                 "--home", str(tmp_path / "home")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err == f"mlops: error: --job-endpoint {closed}: nothing answers there (on this machine: " \
        "make services)"
    assert not (tmp_path / "home").exists()


def test_an_install_without_its_source_tree_needs_an_image(monkeypatch, tmp_path):
    import core.beam_runners

    monkeypatch.setattr(core.beam_runners, "PROJECT_SETUP", tmp_path / "setup.py")
    with pytest.raises(RunnerError, match="--runner spark needs --sdk-container-image"):
        pipeline_args(BeamOptions(runner="spark", spark_master="spark://h:7077"))
    assert pipeline_args(BeamOptions(runner="spark", spark_master="spark://h:7077", sdk_container_image="i"))
