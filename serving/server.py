"""`mlops serve`: TF Serving's REST and gRPC APIs over the serving base dir, in one process."""
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from serving.api.tfserving_grpc import make_grpc_server
from serving.api.tfserving_rest import make_rest_server, serve_in_thread
from serving.dataplane import DataPlane
from serving.options import DEFAULT_GRPC_PORT, DEFAULT_HOST, DEFAULT_REST_PORT, ServerOptions

log = logging.getLogger("mlops.serving")


@dataclass
class RunningServer:
    core: DataPlane
    rest_port: int
    grpc_port: int
    host: str

    def stop(self) -> None:
        """Stops both APIs, then the poller and the request log (which flushes); safe to call twice."""
        if getattr(self, "_stopped", False):
            return
        self._stopped = True
        self._rest.shutdown()
        self._rest.server_close()
        self._grpc.stop(grace=5).wait(10)
        self.core.stop()


def start_server(serving_dir: Path, host: str = DEFAULT_HOST, rest_port: int = DEFAULT_REST_PORT,
                 grpc_port: int = DEFAULT_GRPC_PORT, options: ServerOptions = ServerOptions()) -> RunningServer:
    """Loads what the config wants (before any port opens, so a client never sees an empty server),
    then serves both APIs. Port 0 picks a free port."""
    core = DataPlane(serving_dir, options)
    core.start()
    rest = make_rest_server(core, host, rest_port)
    grpc_server = make_grpc_server(core, host, grpc_port)
    grpc_server.start()
    serve_in_thread(rest)
    running = RunningServer(core, rest.server_address[1], grpc_server.bound_port, host)
    running._rest, running._grpc = rest, grpc_server  # type: ignore[attr-defined]
    return running


def serve_forever(serving_dir: Path, host: str, rest_port: int, grpc_port: int, options: ServerOptions,
                  ready_message: Optional[str] = None) -> None:
    running = start_server(serving_dir, host, rest_port, grpc_port, options)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    models = running.core.manager.models()
    scheme, grpc_tls = ("https", " (TLS)") if options.tls else ("http", "")
    print(f"serving {serving_dir}: REST {scheme}://{host}:{running.rest_port}  gRPC {host}:{running.grpc_port}"
          f"{grpc_tls}", flush=True)
    for name, info in sorted(models.items()):
        print(f"  {name}: versions {info['versions']} labels {info['labels']}", flush=True)
    if ready_message:
        print(ready_message, flush=True)
    stop.wait()
    print("stopping", flush=True)
    running.stop()
