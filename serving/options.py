"""The server's options and defaults (the CLI's defaults too), in a module that imports no TensorFlow."""
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

DEFAULT_HOST = "127.0.0.1"  # loopback only unless --host says otherwise
DEFAULT_REST_PORT, DEFAULT_GRPC_PORT = 8501, 8500  # TF Serving's ports


@dataclass(frozen=True)
class ServerOptions:
    poll_seconds: float = 1.0
    enable_batching: bool = False
    max_batch_size: int = 32  # rows per batched model call
    batch_timeout_ms: float = 2.0  # how long a batch waits for more requests
    batch_threads: int = 2  # batches gathered and run at once per signature (one runs, the next gathers)
    max_request_rows: int = 1024  # rows in one request
    max_request_bytes: int = 16 * 1024 * 1024
    request_timeout_s: float = 30.0  # TF Serving's REST default
    request_log_dir: Optional[Path] = None
    request_log_rate: float = 0.0  # 0: off
    shadow_log_dir: Optional[Path] = None  # default: <serving dir's parent>/shadow-logs (<home>/shadow-logs)
    tls: Optional["TlsFiles"] = None  # HTTPS and gRPC over TLS (TF Serving's ssl_config); None: plain
    idle_timeout_s: float = 30.0  # a REST connection silent this long (idle, or mid-request) is closed
    max_connections: int = 1024  # open REST connections; beyond them a new one gets 503 and is closed
    handshake_timeout_s: float = 10.0  # a client that does not finish its TLS handshake in time is dropped
    max_concurrent_rpcs: int = 256  # gRPC calls in flight or queued, all connections; beyond: RESOURCE_EXHAUSTED
    max_concurrent_streams: int = 100  # gRPC calls open on one connection (HTTP/2 SETTINGS); beyond: refused
    max_metadata_bytes: int = 16 * 1024  # a gRPC call's header block; beyond it the call is refused
    grpc_keepalive_min_s: float = 60.0  # clients may ping no more often; more pings: GOAWAY
    grpc_max_connection_idle_s: float = 0.0  # a gRPC connection with no call this long gets GOAWAY; 0: never
    grpc_max_connection_age_s: float = 0.0  # a gRPC connection this old gets GOAWAY (rebalancing); 0: never
    threads: int = 64  # threads running model calls, per API (batching needs a batch's worth in flight)
    workers: int = 1  # server processes sharing the ports (each loads the models)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the server's certificate chain and key, and optionally the CA whose client
    certificates are required (mutual TLS). On a client: ``ca`` verifies the server, ``cert`` and
    ``key`` are its own certificate for mutual TLS."""
    cert: Optional[Path] = None
    key: Optional[Path] = None
    ca: Optional[Path] = None

    def server_context(self):
        """The REST side's ssl.SSLContext (TLS 1.2+)."""
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.cert), str(self.key))
        if self.ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(str(self.ca))
        return context

    def client_context(self):
        import ssl

        context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        if self.cert and self.key:
            context.load_cert_chain(str(self.cert), str(self.key))
        return context


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")
