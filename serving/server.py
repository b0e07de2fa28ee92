"""`mlops serve`: TF Serving's REST and gRPC APIs (and KServe V2's) over the serving base dir.

One worker is one process with both ports: grpcio's server and uvicorn (``serving.api``) over one
data plane. ``--workers N`` starts N such processes sharing the ports (SO_REUSEPORT: the kernel
spreads connections over them), each loading the models and polling the base dir on its own, the
metrics added up across them (``serving.runtime.metrics``)."""
import logging
import multiprocessing
import os
import signal
import socket
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from serving.api.grpc_server import GrpcServer
from serving.api.http_server import RestServer, listening_socket
from serving.dataplane import DataPlane
from serving.options import DEFAULT_GRPC_PORT, DEFAULT_HOST, DEFAULT_REST_PORT, ServerOptions
from serving.runtime.metrics import MULTIPROCESS_DIR

log = logging.getLogger("mlops.serving")
STOP_GRACE_S = 5.0  # calls in flight at a stop get this long to finish


@dataclass
class RunningServer:
    core: DataPlane
    rest_port: int
    grpc_port: int
    host: str

    def stop(self) -> None:
        """Stops both APIs (calls in flight finish within the grace), then the poller and the request
        log (which flushes); safe to call twice."""
        if getattr(self, "_stopped", False):
            return
        self._stopped = True
        stopped = self._grpc.stop(grace=STOP_GRACE_S)
        self._rest.stop()
        stopped.wait(STOP_GRACE_S * 2)
        self.core.stop()


def start_server(serving_dir: Path, host: str = DEFAULT_HOST, rest_port: int = DEFAULT_REST_PORT,
                 grpc_port: int = DEFAULT_GRPC_PORT, options: ServerOptions = ServerOptions(),
                 reuse_port: bool = False) -> RunningServer:
    """Loads what the config wants (before any port opens, so a client never sees an empty server),
    then serves both APIs. Port 0 picks a free port."""
    core = DataPlane(serving_dir, options)
    core.start()
    sock = None
    try:  # the REST socket first: a gRPC server that never started keeps its port until the process ends
        sock = listening_socket(host, rest_port, reuse_port)
        grpc_server = GrpcServer(core, host, grpc_port, reuse_port)
    except (OSError, RuntimeError) as e:  # a port in use: nothing left bound or running
        if sock is not None:
            sock.close()
        core.stop()
        raise OSError(str(e)) from None
    rest = RestServer(core, sock)
    grpc_server.start()
    rest.start()
    running = RunningServer(core, rest.port, grpc_server.port, host)
    running._rest, running._grpc = rest, grpc_server  # type: ignore[attr-defined]
    return running


def _on_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())


def _until_stopped(stop: threading.Event, check_seconds: float = 1.0) -> None:
    """Returns once a signal set ``stop``. A wait of bounded slices: the kernel may hand SIGTERM to
    any thread (gRPC's, TensorFlow's), and Python runs the handler only when its main thread runs
    bytecode, which a wait without a timeout never does again (a worker hung there, found in CI)."""
    while not stop.wait(check_seconds):
        pass


def _print_ready(models: Dict[str, Dict], ports: Tuple[str, int, int], serving_dir: Path, options: ServerOptions,
                 ready_message: Optional[str]) -> None:
    host, rest_port, grpc_port = ports
    scheme, grpc_tls = ("https", " (TLS)") if options.tls else ("http", "")
    workers = f"  ({options.workers} workers)" if options.workers > 1 else ""
    print(f"serving {serving_dir}: REST {scheme}://{host}:{rest_port}  gRPC {host}:{grpc_port}{grpc_tls}{workers}",
          flush=True)
    for name, info in sorted(models.items()):
        print(f"  {name}: versions {info['versions']} labels {info['labels']}", flush=True)
    if ready_message:
        print(ready_message, flush=True)


def serve_forever(serving_dir: Path, host: str, rest_port: int, grpc_port: int, options: ServerOptions,
                  ready_message: Optional[str] = None) -> None:
    if options.workers > 1:
        return _serve_workers(serving_dir, host, rest_port, grpc_port, options, ready_message)
    running = start_server(serving_dir, host, rest_port, grpc_port, options)
    stop = threading.Event()
    _on_signals(stop)
    _print_ready(running.core.manager.models(), (host, running.rest_port, running.grpc_port), serving_dir, options,
                 ready_message)
    _until_stopped(stop)
    print("stopping", flush=True)
    running.stop()


# --- --workers N ------------------------------------------------------------------------------------

def _reserve(host: str, port: int) -> Tuple[socket.socket, int]:
    """A port every worker can bind too (SO_REUSEPORT), held (bound, not listening) while they run, so
    port 0 means one free port for all of them."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock, sock.getsockname()[1]


def _worker(serving_dir: Path, host: str, rest_port: int, grpc_port: int, options: ServerOptions, ready) -> None:
    stop = threading.Event()
    _on_signals(stop)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [worker %(process)d] %(message)s")
    try:
        running = start_server(serving_dir, host, rest_port, grpc_port, options, reuse_port=True)
    except Exception as e:  # told to the parent, which says it in one line
        ready.put((f"{type(e).__name__}: {e}", {}))
        return
    ready.put(("", running.core.manager.models()))
    _until_stopped(stop)
    running.stop()


def _serve_workers(serving_dir: Path, host: str, rest_port: int, grpc_port: int, options: ServerOptions,
                   ready_message: Optional[str]) -> None:
    reserved = [_reserve(host, port) for port in (rest_port, grpc_port)]
    (_, rest_port), (_, grpc_port) = reserved
    metrics_dir = tempfile.TemporaryDirectory(prefix="mlops-metrics-")
    os.environ[MULTIPROCESS_DIR] = metrics_dir.name  # before the workers start: they inherit it
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    workers: List = [context.Process(target=_worker, name=f"serve-worker-{i}", daemon=False,
                                     args=(serving_dir, host, rest_port, grpc_port, options, ready))
                     for i in range(options.workers)]
    stop = threading.Event()
    _on_signals(stop)
    for worker in workers:
        worker.start()
    try:
        answers = [ready.get(timeout=600) for _ in workers]
        errors = [error for error, _ in answers if error]
        if errors:
            raise OSError(errors[0])
        _print_ready(answers[0][1], (host, rest_port, grpc_port), serving_dir, options, ready_message)
        while not stop.wait(1.0):
            if not all(worker.is_alive() for worker in workers):
                log.error("a serving worker exited; stopping the others")
                break
        print("stopping", flush=True)
    finally:
        for worker in workers:
            if worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.join(timeout=30)
        for sock, _ in reserved:
            sock.close()
        metrics_dir.cleanup()
