"""Beam runners by name: ``BeamOptions`` (what `mlops run|score|skew --runner NAME ...` asks for)
mapped to Beam's own pipeline options by ``pipeline_args``, the one place that knows Beam's flag
names. Everything not covered here still reaches Beam through ``--beam-arg``.

Every runner but the DirectRunner executes the components' Beam pipelines in other processes,
which must import this project: TFX's Beam executors otherwise repackage the whole TFX install as
a ``tfx_ephemeral`` sdist in /tmp before every component (tfx.utils.dependency_utils). So each
runner names its dependency, as TFX documents: an SDK container image holding the project
(``--sdk-container-image``), else this repo's setup.py (``--setup_file``), which Beam builds into
a small sdist and stages with the job."""
import contextlib
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple

from core.config import BEAM_DEPENDENCY_FLAGS, PROJECT_SETUP, beam_args

RUNNERS = ("direct", "portable", "flink", "spark", "dataflow")
ENVIRONMENT_TYPES = ("DOCKER", "PROCESS", "EXTERNAL", "LOOPBACK")  # Beam's SDK harness environments


@dataclass(frozen=True)
class BeamOptions:
    """A runner and its options as the user gave them (CLI flags of the same names)."""
    runner: str = "direct"
    beam_mode: str = "in_memory"  # DirectRunner's running mode
    beam_workers: int = 1  # DirectRunner: workers; portable: SDK workers per node; Flink: parallelism; Dataflow
    job_endpoint: Optional[str] = None  # portable: HOST:PORT of a job service (Beam's, Flink's, Spark's)
    worker_pool: Optional[str] = None  # HOST:PORT of an SDK worker pool (environment EXTERNAL)
    environment_type: Optional[str] = None  # DOCKER | PROCESS | EXTERNAL | LOOPBACK
    environment_config: Optional[str] = None  # the environment's image, command or address
    sdk_container_image: Optional[str] = None  # an SDK image holding this project (Flink, Spark, Dataflow)
    flink_master: Optional[str] = None  # HOST:PORT of a Flink cluster's REST endpoint
    spark_master: Optional[str] = None  # spark://HOST:PORT
    project: Optional[str] = None  # Dataflow: the Google Cloud project ...
    region: Optional[str] = None  # ... its region ...
    temp_location: Optional[str] = None  # ... and a gs:// folder for temporary files
    beam_args: Tuple[str, ...] = ()  # passed through as given, after ours (Beam: the last one wins)

    def __post_init__(self):  # argparse gives a list
        object.__setattr__(self, "beam_args", tuple(self.beam_args))


class RunnerError(ValueError):
    """Options a runner cannot run with: one line naming the flags."""


def _require(options: BeamOptions, runner: str, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if not getattr(options, n)]
    if missing:
        raise RunnerError(f"--runner {runner} needs {', '.join(missing)}")


def _environment(options: BeamOptions) -> Tuple[str, ...]:
    """The SDK harness environment: a worker pool (EXTERNAL), or the type and config given."""
    if options.worker_pool and (options.environment_type or options.environment_config):
        raise RunnerError("give --worker-pool or --environment-type/--environment-config, not both")
    if options.worker_pool:
        return ("--environment_type=EXTERNAL", f"--environment_config={options.worker_pool}")
    kind = (options.environment_type or "").upper()
    if kind and kind not in ENVIRONMENT_TYPES:
        raise RunnerError(f"--environment-type {options.environment_type}: choose one of "
                          f"{', '.join(ENVIRONMENT_TYPES)}")
    if kind == "EXTERNAL" and not options.environment_config:
        raise RunnerError("--environment-type EXTERNAL needs --environment-config HOST:PORT (or give --worker-pool)")
    args = (f"--environment_type={kind}",) if kind else ()
    return args + ((f"--environment_config={options.environment_config}",) if options.environment_config else ())


def _dependency(options: BeamOptions) -> Tuple[str, ...]:
    """The project for the runner's workers, unless the user named a dependency with --beam-arg."""
    if any(a.split("=", 1)[0] in BEAM_DEPENDENCY_FLAGS for a in options.beam_args):
        return ()
    if options.sdk_container_image:
        return (f"--sdk_container_image={options.sdk_container_image}",)
    if not PROJECT_SETUP.is_file():  # installed from a wheel: no source tree to build an sdist from
        raise RunnerError(f"--runner {options.runner} needs --sdk-container-image (an image holding this project): "
                          f"this install has no {PROJECT_SETUP.name} to stage for the workers")
    return (f"--setup_file={PROJECT_SETUP}",)


# Beam's PortableRunner (Flink's and Spark's runners are ones) waits on the job's message stream with
# its job-service request timeout, 60 s by default: a 1M-row Transform was cut there
# (DEADLINE_EXCEEDED "Stream removed"). A day: the job's own length is not what it bounds.
JOB_SERVER_TIMEOUT = f"--job_server_timeout={24 * 3600}"


def _portable(options: BeamOptions) -> Tuple[str, ...]:
    _require(options, "portable", "job_endpoint")
    # SDK workers per job: read by Flink's and Spark's job servers and by ours (ops.beam_job_service)
    workers = (f"--sdk_worker_parallelism={options.beam_workers}",) if options.beam_workers > 1 else ()
    return ("--runner=PortableRunner", f"--job_endpoint={options.job_endpoint}", JOB_SERVER_TIMEOUT,
            *_environment(options), *workers)


def _flink(options: BeamOptions) -> Tuple[str, ...]:
    _require(options, "flink", "flink_master")
    parallelism = (f"--parallelism={options.beam_workers}",) if options.beam_workers > 1 else ()
    return ("--runner=FlinkRunner", f"--flink_master={options.flink_master}", JOB_SERVER_TIMEOUT,
            *_environment(options), *parallelism)


def _spark(options: BeamOptions) -> Tuple[str, ...]:
    _require(options, "spark", "spark_master")
    if not options.spark_master.startswith("spark://"):
        raise RunnerError(f"--spark-master {options.spark_master}: give spark://HOST:PORT")
    return ("--runner=SparkRunner", f"--spark_master_url={options.spark_master}", JOB_SERVER_TIMEOUT,
            *_environment(options))


def _dataflow(options: BeamOptions) -> Tuple[str, ...]:
    _require(options, "dataflow", "project", "region", "temp_location")
    if not options.temp_location.startswith("gs://"):
        raise RunnerError(f"--temp-location {options.temp_location}: Dataflow needs a gs:// folder")
    workers = (f"--num_workers={options.beam_workers}",) if options.beam_workers > 1 else ()  # else autoscaled
    return ("--runner=DataflowRunner", f"--project={options.project}", f"--region={options.region}",
            f"--temp_location={options.temp_location}", *workers)


_REMOTE: Dict[str, Callable[[BeamOptions], Tuple[str, ...]]] = {
    "portable": _portable, "flink": _flink, "spark": _spark, "dataflow": _dataflow}
# each runner's own flags: given to another runner they would be silently ignored, so they are refused
_OWN_FLAGS = {"job_endpoint": ("portable",), "worker_pool": ("portable", "flink", "spark"),
              "environment_type": ("portable", "flink", "spark"), "environment_config": ("portable", "flink", "spark"),
              "sdk_container_image": ("portable", "flink", "spark", "dataflow"), "flink_master": ("flink",),
              "spark_master": ("spark",), "project": ("dataflow",), "region": ("dataflow",),
              "temp_location": ("dataflow",)}


def pipeline_args(options: BeamOptions) -> Tuple[str, ...]:
    """Beam's pipeline args for ``options``: the runner's own, its dependency, then --beam-arg's."""
    if options.runner not in RUNNERS:
        raise RunnerError(f"--runner {options.runner}: choose one of {', '.join(RUNNERS)}")
    stray = [f"--{name.replace('_', '-')}" for name, runners in _OWN_FLAGS.items()
             if getattr(options, name) and options.runner not in runners]
    if stray:
        raise RunnerError(f"{', '.join(stray)}: not an option of --runner {options.runner}")
    if any(a.startswith("--runner=") for a in options.beam_args) and options.runner != "direct":
        raise RunnerError(f"--runner {options.runner} and --beam-arg=--runner=...: give one runner")
    if options.runner == "direct":
        return beam_args(options.beam_mode, options.beam_workers, tuple(options.beam_args))
    if options.beam_workers < 1:
        raise RunnerError(f"--beam-workers {options.beam_workers}: need at least 1")
    if options.beam_mode != "in_memory":
        raise RunnerError(f"--beam-mode {options.beam_mode}: a DirectRunner option (--runner direct)")
    return (*_REMOTE[options.runner](options), *_dependency(options), *options.beam_args)


@contextlib.contextmanager
def beam_temp_dir() -> Iterator[Path]:
    """For the block, this process's temporary files go to a folder of their own, removed after.
    Beam's stager writes each job's staging files (the setup.py sdist, the submitter's package list)
    to a ``tempfile.mkdtemp()`` it never removes (apache_beam.transforms.environments.
    python_sdk_dependencies), once per Beam pipeline; TMPDIR reaches the sdist build's subprocess."""
    folder = tempfile.mkdtemp(prefix="mlops-beam-")
    saved_dir, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir, os.environ["TMPDIR"] = folder, folder
    try:
        yield Path(folder)
    finally:
        tempfile.tempdir = saved_dir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        shutil.rmtree(folder, ignore_errors=True)


class ServiceUnreachable(RuntimeError):
    """A job service or worker pool the args name does not answer: one line, exit 1."""


def _last(args: Sequence[str], flag: str) -> Optional[str]:
    return next((a.split("=", 1)[1] for a in reversed(args) if a.startswith(f"--{flag}=")), None)


def check_services(args: Sequence[str], timeout_s: float = 3.0) -> None:
    """The portable job service and an EXTERNAL worker pool in ``args`` accept a connection, checked
    before any work: otherwise the first Beam step waits Beam's 60 s job-server timeout, then fails
    with a bare FutureTimeoutError."""
    named = {"--job-endpoint": _last(args, "job_endpoint")}
    if (_last(args, "environment_type") or "").upper() == "EXTERNAL":
        named["--worker-pool"] = _last(args, "environment_config")
    for flag, address in named.items():
        if not address:
            continue
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host or "localhost", int(port)), timeout=timeout_s).close()
        except (OSError, ValueError):
            raise ServiceUnreachable(f"{flag} {address}: nothing answers there (on this machine: make services)") \
                from None
