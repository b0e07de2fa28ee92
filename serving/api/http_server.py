"""The REST port's server: uvicorn with its C HTTP/1.1 parser (httptools, llhttp) on the libuv event
loop (uvloop), as KServe, MLServer and MLflow run it, in a thread of ``mlops serve``.

uvicorn answers the protocol (keep-alive, pipelining, ``Expect: 100-continue``, chunked bodies,
malformed requests); ``GuardedHttpProtocol`` adds what an exposed port needs that uvicorn leaves to
a proxy: a deadline for a request's head (slowloris), caps on the head's size and header count
(431), a cap on open connections (503 at once), and the TLS handshake's time bound (``BoundedLoop``)."""
import asyncio
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Optional

import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving.api.rest_app import RestApp
from serving.codec import tensors
from serving.dataplane import DataPlane
from serving.options import ServerOptions

MAX_HEAD_BYTES, MAX_HEADERS = 64 * 1024, 100  # a request's line and header fields; beyond: 431
DRAIN_BYTES = 64 << 20  # of a refused body (413), read and dropped so the client reads the answer; beyond: closed
SERVER_NAME = "mlops-serving"


class GuardedHttpProtocol(HttpToolsProtocol):
    head_timeout_s: float = 30.0
    max_connections: int = 1024

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._head_timer: Optional[asyncio.TimerHandle] = None
        self._in_head, self._head_bytes, self._header_count = True, 0, 0
        self._dropped, self._heads_ended, self._head_fields = 0, 0, 0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse(503, f"Too many connections (the limit is {self.max_connections}); retry later",
                         b"retry-after: 1\r\n")
            return
        self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        in_head_before, self._heads_ended = self._in_head, 0
        super().data_received(data)
        # a head still incomplete (its fields not parsed yet): the bytes of reads that are all head count;
        # a read that ended a head may carry a body or whole requests (the head's fields are counted)
        if self._in_head and in_head_before and not self._heads_ended and self.transport is not None \
                and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, f"Request head larger than {MAX_HEAD_BYTES} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes, self._header_count, self._dropped = True, 0, 0, 0
        self._head_fields = 0
        self._arm()

    def on_body(self, body: bytes) -> None:
        if self.cycle.response_complete:  # answered already (413): uvicorn drops the rest, up to a bound
            self._dropped += len(body)
            if self._dropped > DRAIN_BYTES:
                self.transport.close()
                return
        super().on_body(body)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_fields += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._header_count += 1
        self._head_fields += len(name) + len(value)
        if self._header_count > MAX_HEADERS:
            self._refuse(431, f"More than {MAX_HEADERS} header fields")
        elif self._head_fields > MAX_HEAD_BYTES:  # a whole head that came in one read
            self._refuse(431, f"Request head larger than {MAX_HEAD_BYTES} bytes")

    def on_headers_complete(self) -> None:
        self._disarm()
        self._in_head, self._heads_ended = False, self._heads_ended + 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        """No complete request head within the time: the connection is closed (idle, or slowloris)."""
        self._head_timer = None
        if self.transport is not None and not self.transport.is_closing():
            if self.cycle is None or self.cycle.response_complete:
                self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what its parser refuses, in TF Serving's JSON error shape."""
        self._refuse(400, msg)

    def _refuse(self, status: int, message: str, extra: bytes = b"") -> None:
        if self.transport.is_closing():  # refused already (the parser goes on to the chunk's end)
            return
        body = tensors.dumps({"error": message})
        reason = HTTPStatus(status).phrase.encode()
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n%sconnection: close\r\n"
                             b"content-length: %d\r\n\r\n%s" % (status, reason, extra, len(body), body))
        self._disarm()
        self.transport.close()


class BoundedLoop(uvloop.Loop):
    """uvloop's loop whose TLS servers drop a client that does not finish its handshake in time
    (uvicorn does not pass asyncio's ssl_handshake_timeout on)."""
    handshake_timeout_s: float = 10.0

    async def create_server(self, *args, **kwargs):
        if kwargs.get("ssl") is not None:
            kwargs.setdefault("ssl_handshake_timeout", self.handshake_timeout_s)
        return await super().create_server(*args, **kwargs)


def listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _config(plane: DataPlane, app: RestApp) -> uvicorn.Config:
    options: ServerOptions = plane.options
    protocol = type("BoundGuardedHttpProtocol", (GuardedHttpProtocol,),
                    {"head_timeout_s": options.idle_timeout_s, "max_connections": options.max_connections})
    config = uvicorn.Config(app, http=protocol, loop="none", lifespan="off", proxy_headers=False,
                            timeout_keep_alive=options.idle_timeout_s, timeout_graceful_shutdown=5,
                            server_header=False, headers=[("server", SERVER_NAME)], access_log=False,
                            log_config=None, backlog=2048)  # logging stays the CLI's to configure
    config.load()
    if options.tls is not None:
        config.ssl = options.tls.server_context()
    return config


class RestServer:
    """uvicorn serving ``plane`` on ``sock``, in its own thread with its own event loop."""

    def __init__(self, plane: DataPlane, sock: socket.socket):
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.executor = ThreadPoolExecutor(plane.options.threads, thread_name_prefix="rest")
        app = RestApp(plane, self.executor)
        self.server = uvicorn.Server(_config(plane, app))
        app.connections = self.server.server_state.connections
        self.handshake_timeout_s = plane.options.handshake_timeout_s
        self._thread = threading.Thread(target=self._run, name="rest", daemon=True)

    def _run(self) -> None:
        loop = BoundedLoop()
        loop.handshake_timeout_s = self.handshake_timeout_s
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.server.serve(sockets=[self.sock]))
        finally:
            loop.close()

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        for _ in range(int(timeout / 0.01)):
            if self.server.started or not self._thread.is_alive():
                break
            time.sleep(0.01)
        if not self.server.started:
            raise OSError(f"the REST server did not start on port {self.port}")

    @property
    def open_connections(self) -> int:
        return len(self.server.server_state.connections)

    def stop(self) -> None:
        """Stops taking connections, lets requests in flight finish (up to 5 s), then closes."""
        self.server.should_exit = True
        self._thread.join(timeout=15)
        self.executor.shutdown(wait=False)
        self.sock.close()
