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
    max_request_rows: int = 1024  # rows in one request
    max_request_bytes: int = 16 * 1024 * 1024
    request_timeout_s: float = 30.0  # TF Serving's REST default
    request_log_dir: Optional[Path] = None
    request_log_rate: float = 0.0  # 0: off
    shadow_log_dir: Optional[Path] = None  # default: <serving dir's parent>/shadow-logs (<home>/shadow-logs)
