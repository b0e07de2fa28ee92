"""Beam's portable runner on this machine: its Python job service (ops.beam_job_service: Beam's, each
job on as many SDK workers as it asks for) and an EXTERNAL SDK worker pool, started in the background
on free loopback ports (`make services`, the portable e2e test), their pids and ports written to a
state file, and stopped by those pids.

    python -m ops.beam_services start|stop|status [STATE_DIR]   (default STATE_DIR: ./.mlops/services)

The pool starts each SDK worker as ``python -c ...`` with the first ``python`` on PATH
(apache_beam.runners.worker.worker_pool_main): this interpreter's folder goes first on the pool's
PATH, so the workers import Beam, TFX and this project from the same venv."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional

from components.ports import free_ports

STATE_FILE = "beam-services.json"
READY_SECONDS = 120  # importing Beam on a busy 2-core machine takes a few seconds; bounded
DEFAULT_STATE_DIR = Path(".mlops") / "services"


@dataclass(frozen=True)
class BeamServices:
    job_port: int
    pool_port: int
    pids: List[int]  # each the leader of its own process group (the pool's workers are in it)
    folder: str  # state file, logs, the job service's staging folder

    @property
    def job_endpoint(self) -> str:
        return f"127.0.0.1:{self.job_port}"

    @property
    def worker_pool(self) -> str:
        return f"127.0.0.1:{self.pool_port}"


def _wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{' '.join(map(str, process.args[:3]))} exited ({process.returncode}); see {log}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {READY_SECONDS} s; see {log}")


def _start(command: List[str], log: Path) -> subprocess.Popen:
    """A service in its own session (it outlives `make services`), output to ``log``. Its workers
    load our models through TFMA and TFT, which need the legacy-Keras switch set before TensorFlow
    loads (components.LEGACY_KERAS_ENV): the pool's environment carries it to them."""
    from components import LEGACY_KERAS_ENV

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "TMPDIR": str(log.parent / "tmp"), LEGACY_KERAS_ENV: "1"}  # temporary files stay in the state folder
    (log.parent / "tmp").mkdir(exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)


def start(folder: Path) -> BeamServices:
    """The job service and the worker pool, listening when this returns; their state in ``folder``."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    job_port, pool_port = free_ports(2)
    staging = folder / "staging"
    pool = _start([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                   f"--service_port={pool_port}"], folder / "worker-pool.log")
    job = _start([sys.executable, "-m", "ops.beam_job_service", f"--port={job_port}", f"--staging_dir={staging}"],
                 folder / "job-service.log")
    services = BeamServices(job_port, pool_port, [job.pid, pool.pid], str(folder))
    (folder / STATE_FILE).write_text(json.dumps(asdict(services)))
    try:
        _wait_for_port(pool_port, pool, folder / "worker-pool.log")
        _wait_for_port(job_port, job, folder / "job-service.log")
    except RuntimeError:
        stop(services)
        raise
    return services


def read(folder: Path) -> Optional[BeamServices]:
    path = Path(folder) / STATE_FILE
    return BeamServices(**json.loads(path.read_text())) if path.is_file() else None


def stop(services: BeamServices) -> None:
    """SIGTERM to each service's process group (the pool's workers with it), then the state file
    goes. A group already gone is skipped."""
    for pid in services.pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            continue
    deadline = time.monotonic() + 10
    for pid in services.pids:
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.1)
    (Path(services.folder) / STATE_FILE).unlink(missing_ok=True)


def alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reaps it when it is our child (the test fixture's case)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main(argv: List[str]) -> int:
    action = argv[0] if argv else "status"
    folder = Path(argv[1]) if len(argv) > 1 else DEFAULT_STATE_DIR
    running = read(folder)
    if action == "start":
        if running and all(alive(pid) for pid in running.pids):
            print(f"already running: --job-endpoint {running.job_endpoint} --worker-pool {running.worker_pool}")
            return 0
        running = start(folder)
    elif action == "stop":
        if running:
            stop(running)
        print("stopped" if running else f"{folder}: nothing started here")
        return 0
    elif action != "status":
        print(f"{action}: give start, stop or status", file=sys.stderr)
        return 2
    if not running:
        print(f"{folder}: nothing started here (make services)")
        return 1
    print(f"Beam job service and worker pool (pids {', '.join(map(str, running.pids))}; state in {folder}):\n"
          f"  mlops run --runner portable --job-endpoint {running.job_endpoint} --worker-pool {running.worker_pool}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
