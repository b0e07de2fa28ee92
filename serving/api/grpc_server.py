"""The gRPC port on grpcio's own server, its asyncio one (``grpc.aio``) with the servicers on a
thread pool: TF Serving's PredictionService and ModelService, the Open Inference Protocol's
GRPCInferenceService, the standard health service (``grpc.health.v1``, one entry per model, SERVING
while a version takes traffic) and server reflection (``grpcurl list``).

The HTTP/2 limits are grpcio's, set from ServerOptions (docs/serving.md lists them): message and
header sizes, calls in flight, streams per connection, keepalive enforcement, idle and age limits,
the TLS handshake's time."""
import asyncio
import threading
from concurrent import futures
from typing import Dict, List, Optional, Tuple

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tensorflow_serving.apis import model_service_pb2, prediction_service_pb2

from serving.api import tfserving_grpc, v2_grpc
from serving.dataplane import DataPlane
from serving.options import ServerOptions
from serving.runtime.manager import all_serving

# the services' descriptors, for reflection (the generated *_grpc modules import only their messages)
DESCRIBED = (prediction_service_pb2.DESCRIPTOR, model_service_pb2.DESCRIPTOR)
SERVICES = ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService",
            "inference.GRPCInferenceService", health.SERVICE_NAME, reflection.SERVICE_NAME)
MAX_RESPONSE_BYTES = 256 * 1024 * 1024  # an answer can exceed a request (outputs per row)


def channel_options(options: ServerOptions, reuse_port: bool) -> List[Tuple[str, int]]:
    """grpcio's server arguments (grpc_types.h) for the limits in ``options``."""
    args = [
        ("grpc.max_receive_message_length", options.max_request_bytes),
        ("grpc.max_send_message_length", MAX_RESPONSE_BYTES),
        ("grpc.max_concurrent_streams", options.max_concurrent_streams),
        ("grpc.max_metadata_size", options.max_metadata_bytes),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", int(options.grpc_keepalive_min_s * 1000)),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.server_handshake_timeout_ms", int(options.handshake_timeout_s * 1000)),
        ("grpc.so_reuseport", int(reuse_port)),  # on only for --workers: else a second server on the port fails
    ]
    if options.grpc_max_connection_idle_s > 0:
        args.append(("grpc.max_connection_idle_ms", int(options.grpc_max_connection_idle_s * 1000)))
    if options.grpc_max_connection_age_s > 0:
        args += [("grpc.max_connection_age_ms", int(options.grpc_max_connection_age_s * 1000)),
                 ("grpc.max_connection_age_grace_ms", int(options.request_timeout_s * 1000))]
    return args


class ModelHealth:
    """The health service's statuses kept in step with what takes traffic: "" (the server) is
    SERVING when every configured model has a version, each model's name when it has one. The
    servicer is grpcio's asyncio one: its statuses change on the server's event loop."""

    def __init__(self, plane: DataPlane, loop: asyncio.AbstractEventLoop):
        self.servicer = health.aio.HealthServicer()
        self.plane, self.loop = plane, loop

    def update(self) -> None:
        """Called from any thread but the loop's (the manager's, on a publish); nothing once stopped."""
        serving = self.plane.manager.serving_models()
        statuses = {**{name: _status(up) for name, up in serving.items()},
                    "": _status(all_serving(serving))}
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self._set(statuses), self.loop).result(timeout=30)

    async def _set(self, statuses: Dict[str, int]) -> None:
        for name, status in statuses.items():
            await self.servicer.set(name, status)


def _status(up: bool) -> int:
    return health_pb2.HealthCheckResponse.SERVING if up else health_pb2.HealthCheckResponse.NOT_SERVING


def _credentials(options: ServerOptions) -> grpc.ServerCredentials:
    tls = options.tls
    ca = tls.ca.read_bytes() if tls.ca else None
    return grpc.ssl_server_credentials([(tls.key.read_bytes(), tls.cert.read_bytes())], root_certificates=ca,
                                       require_client_auth=ca is not None)


class GrpcServer:
    """grpcio's asyncio server on an event loop of its own thread, the servicers synchronous on a pool
    of ``options.threads``. A call's request is read on the loop, so only a running handler holds a
    thread (grpc.server, the synchronous one, reads it on a handler thread: 64 calls whose requests
    never came held every thread, and no other call was answered). Made bound, not started: ``port`` is
    the bound one (0 asked: a free one)."""

    def __init__(self, plane: DataPlane, host: str, port: int, reuse_port: bool):
        self.plane = plane
        self.loop = asyncio.new_event_loop()
        self.executor = futures.ThreadPoolExecutor(plane.options.threads, thread_name_prefix="grpc")
        self._thread = threading.Thread(target=self._serve_loop, name="grpc", daemon=True)
        self._thread.start()
        self.model_health = ModelHealth(plane, self.loop)
        try:
            self.server, self.port = self._run(self._create(host, port, reuse_port))
        except BaseException:
            self._close()
            raise

    def _serve_loop(self) -> None:
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def _run(self, coroutine, timeout: Optional[float] = 60.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _create(self, host: str, port: int, reuse_port: bool) -> Tuple[grpc.aio.Server, int]:
        options = self.plane.options
        server = grpc.aio.server(migration_thread_pool=self.executor,
                                 maximum_concurrent_rpcs=options.max_concurrent_rpcs,
                                 options=channel_options(options, reuse_port))
        tfserving_grpc.add_to_server(self.plane, server)
        v2_grpc.add_to_server(self.plane, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.model_health.servicer, server)
        reflection.enable_server_reflection(SERVICES, server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = server.add_secure_port(address, _credentials(options)) if options.tls is not None \
                else server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if not bound:
            raise OSError(f"cannot listen on {address} for gRPC (in use?)")
        return server, bound

    def start(self) -> None:
        self._run(self.server.start())
        self.model_health.update()
        self.plane.manager.on_publish = self.model_health.update

    def stop(self, grace: float) -> threading.Event:
        """Health says NOT_SERVING, new calls are refused, calls in flight get ``grace`` seconds; the
        returned event is set once the server has stopped."""
        stopped = threading.Event()
        self.plane.manager.on_publish = lambda: None  # a status set after this would find the loop gone

        async def stop() -> None:
            await self.model_health.servicer.enter_graceful_shutdown()
            await self.server.stop(grace)

        def done(_) -> None:
            self._close()
            stopped.set()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).add_done_callback(done)
        return stopped

    def _close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.executor.shutdown(wait=False)
