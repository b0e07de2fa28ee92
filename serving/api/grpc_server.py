"""The gRPC port on grpcio's own server: TF Serving's PredictionService and ModelService, the Open
Inference Protocol's GRPCInferenceService, the standard health service (``grpc.health.v1``, one entry
per model, SERVING while a version takes traffic) and server reflection (``grpcurl list``).

The HTTP/2 limits are grpcio's, set from ServerOptions (docs/serving.md lists them): message and
header sizes, calls in flight, streams per connection, keepalive enforcement, idle and age limits,
the TLS handshake's time."""
from concurrent import futures
from typing import List, Tuple

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tensorflow_serving.apis import model_service_pb2, prediction_service_pb2

from serving.api import tfserving_grpc, v2_grpc
from serving.dataplane import DataPlane
from serving.options import ServerOptions

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
    SERVING when every configured model has a version, each model's name when it has one."""

    def __init__(self, plane: DataPlane):
        self.servicer = health.HealthServicer(experimental_non_blocking=True)
        self.plane = plane
        self.update()
        plane.manager.on_publish = self.update

    def update(self) -> None:
        serving = self.plane.manager.serving_models()
        for name, up in serving.items():
            self.servicer.set(name, _status(up))
        self.servicer.set("", _status(bool(serving) and all(serving.values())))


def _status(up: bool) -> int:
    return health_pb2.HealthCheckResponse.SERVING if up else health_pb2.HealthCheckResponse.NOT_SERVING


def _credentials(options: ServerOptions) -> grpc.ServerCredentials:
    tls = options.tls
    ca = tls.ca.read_bytes() if tls.ca else None
    return grpc.ssl_server_credentials([(tls.key.read_bytes(), tls.cert.read_bytes())], root_certificates=ca,
                                       require_client_auth=ca is not None)


def make_grpc_server(plane: DataPlane, host: str, port: int, reuse_port: bool = False) -> Tuple[grpc.Server, int]:
    """The server (not started) and its bound port (``port`` 0: a free one)."""
    options = plane.options
    server = grpc.server(futures.ThreadPoolExecutor(options.threads, thread_name_prefix="grpc"),
                         maximum_concurrent_rpcs=options.max_concurrent_rpcs,
                         options=channel_options(options, reuse_port))
    tfserving_grpc.add_to_server(plane, server)
    v2_grpc.add_to_server(plane, server)
    server.model_health = ModelHealth(plane)  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(server.model_health.servicer, server)  # type: ignore[attr-defined]
    reflection.enable_server_reflection(SERVICES, server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if options.tls is not None:
        bound = server.add_secure_port(address, _credentials(options))
    else:
        bound = server.add_insecure_port(address)
    if not bound:
        raise OSError(f"cannot listen on {address} for gRPC (in use?)")
    return server, bound
