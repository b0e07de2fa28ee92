"""gRPC's unary calls over HTTP/2 (h2c, or h2 over TLS), a thread per connection as the REST server has.

Why not grpcio's server: each of its calls crosses threads twice (its poller hands the call to a pool
worker, which then waits on the poller for the message). Measured here, grpcio's echo alone, with no
work, cost as much per call as our whole REST request. Here the connection's own thread reads the
frames, runs the call and writes the answer; calls that arrive together on one connection go to a
shared pool, so they run side by side and can meet in a batch.

The servicers stay grpcio's: generic handlers (``grpc.method_handlers_generic_handler``, the generated
``add_*_to_server``), and a context with ``abort`` and ``invocation_metadata``. Implemented: unary
calls, HPACK (decoding through ``hpack``; answers use static literals), flow control both ways,
SETTINGS, PING, GOAWAY on stop, RST_STREAM, grpc-timeout, gzip/deflate requests, the message-size and
concurrent-call limits (RESOURCE_EXHAUSTED), TLS with ALPN "h2" and optional client certificates.
Streaming methods answer UNIMPLEMENTED."""
import base64
import logging
import select
import socket
import ssl
import struct
import threading
import time
import zlib
from concurrent import futures
from typing import Any, Dict, Iterable, List, Optional, Tuple

import grpc
import hpack
from hpack.table import HeaderTable

from serving.options import TLS_HANDSHAKE_SECONDS

log = logging.getLogger("mlops.serving")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
HEADER_TABLE_SIZE, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE = 1, 3, 4, 5
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, REFUSED_STREAM = 0, 1, 3, 6, 7
ENHANCE_YOUR_CALM = 0xB
LARGEST_WINDOW = 2 ** 31 - 1
DEFAULT_WINDOW, DEFAULT_FRAME = 65535, 16384
OUR_MAX_FRAME = 1 << 20  # frames we accept (fewer frames for an image request)
IDLE_CONNECTION_SECONDS = 300.0  # a connection with no call open this long gets GOAWAY (clients reconnect)
STATUS = {code: code.value[0] for code in grpc.StatusCode}


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big") + payload


def _hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out, value = bytearray([first | limit]), value - limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def literal(name: bytes, value: bytes) -> bytes:
    """HPACK's literal header field without indexing, new name, no Huffman coding: needs no table."""
    return b"\x00" + _hpack_int(len(name), 7) + name + _hpack_int(len(value), 7) + value


# :status 200 (static index 8), then content-type: the answer's headers, the same bytes for every call.
RESPONSE_HEADERS = b"\x88" + literal(b"content-type", b"application/grpc")
OK_TRAILERS = literal(b"grpc-status", b"0")
# the frame heads (length, type, flags) of an answer's headers and of its trailers, before the stream id
ANSWER_HEAD = len(RESPONSE_HEADERS).to_bytes(3, "big") + bytes((HEADERS, END_HEADERS))
OK_TRAILERS_HEAD = len(OK_TRAILERS).to_bytes(3, "big") + bytes((HEADERS, END_HEADERS | END_STREAM))
ACCEPT_ENCODING = literal(b"grpc-accept-encoding", b"identity,deflate,gzip")
RESERVED_METADATA = {"content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding"}
TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def percent_encode(message: str) -> bytes:
    """grpc-message's encoding: bytes outside printable ASCII, and '%', as %XX."""
    return b"".join(bytes([b]) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in message.encode())


def parse_timeout(value: str) -> float:
    """grpc-timeout ("100m", "30S", ...) in seconds."""
    if len(value) < 2 or value[-1] not in TIMEOUT_UNITS or not value[:-1].isdigit():
        raise ValueError(f"bad grpc-timeout {value!r}")
    return int(value[:-1]) * TIMEOUT_UNITS[value[-1]]


class _CountingTable(HeaderTable):
    """hpack's dynamic table, counting its changes: a header block decoded while the table is unchanged
    decodes to the same headers, so the decoder can reuse its answer."""

    def __init__(self) -> None:
        self.changes = 0
        super().__init__()

    def add(self, name: bytes, value: bytes) -> Any:
        self.changes += 1
        return super().add(name, value)

    @HeaderTable.maxsize.setter  # type: ignore[attr-defined]
    def maxsize(self, new_max: int) -> None:
        self.changes += 1
        HeaderTable.maxsize.fset(self, new_max)  # type: ignore[attr-defined]


class HeaderDecoder:
    """HPACK decoding for one connection, with the answers of the last few blocks kept: clients send the
    same block call after call (static literals, or references into an unchanged dynamic table)."""

    def __init__(self, cached: int = 32):
        self._decoder = hpack.Decoder()
        self._table = self._decoder.header_table = _CountingTable()
        self._cache: Dict[bytes, Tuple[int, List[Tuple[str, str]]]] = {}
        self._cached = cached

    def decode(self, block: bytes) -> List[Tuple[str, str]]:
        hit = self._cache.get(block)
        if hit is not None and hit[0] == self._table.changes:
            return hit[1]
        before = self._table.changes
        headers = self._decoder.decode(block)
        if self._table.changes == before:
            if len(self._cache) >= self._cached:
                self._cache.clear()
            self._cache[block] = (before, headers)
        return headers


class RpcAborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self.code, self.details = code, details


class CallContext:
    """The part of grpc.ServicerContext a unary servicer uses."""

    def __init__(self, metadata: Tuple[Tuple[str, Any], ...], deadline: Optional[float], peer: str):
        self._metadata, self._deadline, self._peer = metadata, deadline, peer
        self.code: Optional[grpc.StatusCode] = None
        self.details = ""

    def invocation_metadata(self) -> Tuple[Tuple[str, Any], ...]:
        return self._metadata

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise RpcAborted(code, details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details

    def time_remaining(self) -> Optional[float]:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def is_active(self) -> bool:
        return self._deadline is None or time.monotonic() < self._deadline

    def peer(self) -> str:
        return self._peer


class _HandlerCallDetails:
    def __init__(self, method: str, metadata: Tuple[Tuple[str, Any], ...]):
        self.method, self.invocation_metadata = method, metadata


class _Stream:
    __slots__ = ("headers", "block", "body", "send_window", "ended", "answered")

    def __init__(self, send_window: int):
        self.headers: Optional[List[Tuple[str, str]]] = None
        self.block = bytearray()
        self.body = bytearray()
        self.send_window = send_window
        self.ended = self.answered = False


class ConnectionClosed(Exception):
    pass


class _PlainIo:
    """A plain socket: one thread reads while others write, as the kernel allows."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._timeout: Optional[float] = None

    def recv(self, size: int, timeout: float) -> bytes:
        if timeout != self._timeout:  # settimeout is two fcntl calls: only when it changes
            self.sock.settimeout(timeout)
            self._timeout = timeout
        return self.sock.recv(size)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)


class _TlsIo(_PlainIo):
    """A TLS socket shared by the reading thread and the pool's writers. OpenSSL must not read and write
    one connection at once, so both hold a lock; the reader waits for bytes (select) outside it."""

    def __init__(self, sock: ssl.SSLSocket):
        super().__init__(sock)
        sock.setblocking(False)
        self.lock = threading.Lock()

    def recv(self, size: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                try:
                    return self.sock.recv(size)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("timed out")
            select.select([self.sock], [], [], remaining)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        with self.lock:
            while view:
                try:
                    view = view[self.sock.send(view):]
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    if not select.select([], [self.sock], [], TLS_HANDSHAKE_SECONDS)[1]:
                        raise socket.timeout("the client reads nothing") from None


class _Connection:
    """One client connection: its thread reads frames, runs a call that arrives alone, and sends the pool
    the calls that arrive together; writes are serialized by a lock."""

    def __init__(self, server: "Http2GrpcServer", sock: socket.socket, peer: str):
        self.server, self.sock, self.peer = server, sock, peer
        self.io = _TlsIo(sock) if isinstance(sock, ssl.SSLSocket) else _PlainIo(sock)
        self.buffer = bytearray()
        self.decoder = HeaderDecoder()
        self.streams: Dict[int, _Stream] = {}
        self.ready: List[Tuple[int, _Stream]] = []
        self.last_stream = 0
        self.peer_window, self.peer_initial_window, self.peer_max_frame = DEFAULT_WINDOW, DEFAULT_WINDOW, DEFAULT_FRAME
        self.unacknowledged = 0  # bytes received since our last WINDOW_UPDATE
        self.write_lock = threading.Lock()
        self.window_opened = threading.Condition(self.write_lock)
        self.reader = threading.current_thread()
        self.on_pool = 0
        self.closing = self.preface_seen = False
        self._plans: Dict[int, Tuple[List[Tuple[str, str]], Tuple[Any, ...]]] = {}

    # --- the connection's thread --------------------------------------------------------------------
    def serve(self) -> None:
        try:
            self._write(frame(SETTINGS, 0, 0, struct.pack(">HIHIHI", MAX_CONCURRENT_STREAMS,
                                                          self.server.max_concurrent_rpcs, INITIAL_WINDOW_SIZE,
                                                          LARGEST_WINDOW, MAX_FRAME_SIZE, OUR_MAX_FRAME))
                        + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", LARGEST_WINDOW - DEFAULT_WINDOW)))
            self._receive_until(len(PREFACE), self.server.idle_timeout)
            if bytes(self.buffer[:len(PREFACE)]) != PREFACE:
                raise ConnectionClosed("not an HTTP/2 client preface")
            del self.buffer[:len(PREFACE)]
            self.preface_seen = True
            while not self.closing:
                if self.ready and not self._frame_buffered():  # nothing more to read without waiting
                    self._dispatch()
                elif self.ready or self.on_pool or not self._lone_call():
                    self._handle(*self._next_frame())
        except (ConnectionClosed, OSError, hpack.HPACKError) as e:
            log.debug("gRPC connection from %s closed: %s", self.peer, e)
        finally:
            self.closing = True
            with self.window_opened:
                self.window_opened.notify_all()
            try:
                self.sock.close()
            except OSError:
                pass

    def _receive_until(self, size: int, timeout: float) -> None:
        while len(self.buffer) < size:
            try:
                chunk = self.io.recv(262144, timeout)
            except socket.timeout:
                half_sent = self.buffer or any(not stream.ended for stream in list(self.streams.values()))
                if half_sent or not self.preface_seen or self.closing or timeout >= IDLE_CONNECTION_SECONDS:
                    self.goaway(NO_ERROR, b"idle")
                    raise ConnectionClosed("timed out") from None
                timeout = IDLE_CONNECTION_SECONDS  # no call half-sent: a client keeps its channel open
                continue
            if not chunk:
                raise ConnectionClosed("the client closed the connection")
            self.buffer += chunk

    def _lone_call(self) -> bool:
        """The usual unary call: what was read is just its HEADERS (a whole block, no padding or
        priority) and the one DATA frame that ends its stream. Both are handled as ``_handle`` would
        (``_open``, ``_count``, ``_append``), without reading them frame by frame, and the call runs here.
        False (nothing consumed) otherwise."""
        self._receive_until(9, self.server.idle_timeout)
        buffer = self.buffer
        size = len(buffer)
        if size < 18 or size > OUR_MAX_FRAME or buffer[3] != HEADERS or buffer[4] != END_HEADERS:
            return False
        data = 9 + int.from_bytes(buffer[:3], "big")
        if (size < data + 9 or buffer[data + 3] != DATA or buffer[data + 4] != END_STREAM
                or size != data + 9 + int.from_bytes(buffer[data:data + 3], "big")
                or buffer[5:9] != buffer[data + 5:data + 9]):
            return False
        stream_id = int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
        block, body = bytes(buffer[9:data]), bytes(buffer[data + 9:])
        buffer.clear()
        stream = self._open(stream_id, self.decoder.decode(block))
        self._count(len(body))
        if stream is not None and self._append(stream_id, stream, body):
            stream.ended = True
            self._run(stream_id, stream)  # nothing else is ready or on the pool (``serve`` asked first)
        return True

    def _frame_buffered(self) -> bool:
        return len(self.buffer) >= 9 and len(self.buffer) >= 9 + int.from_bytes(self.buffer[:3], "big")

    def _next_frame(self) -> Tuple[int, int, int, bytes]:
        self._receive_until(9, self.server.idle_timeout)
        length = int.from_bytes(self.buffer[:3], "big")
        if length > OUR_MAX_FRAME:
            self.goaway(FRAME_SIZE_ERROR, b"frame larger than SETTINGS_MAX_FRAME_SIZE")
            raise ConnectionClosed("frame too large")
        self._receive_until(9 + length, self.server.idle_timeout)
        kind, flags = self.buffer[3], self.buffer[4]
        stream = int.from_bytes(self.buffer[5:9], "big") & 0x7FFFFFFF
        payload = bytes(self.buffer[9:9 + length])
        del self.buffer[:9 + length]
        return kind, flags, stream, payload

    def _handle(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if kind == DATA:
            self._data(flags, stream_id, payload)
        elif kind == HEADERS:
            self._headers(flags, stream_id, payload)
        elif kind == SETTINGS:
            if not flags & ACK:
                self._settings(payload)
        elif kind == WINDOW_UPDATE:
            self._window_update(stream_id, payload)
        elif kind == PING:
            if not flags & ACK:
                self._write(frame(PING, ACK, 0, payload))
        elif kind == RST_STREAM:
            with self.write_lock:
                self.streams.pop(stream_id, None)
        elif kind == GOAWAY:
            self.closing = not self.streams and not self.on_pool
        elif kind in (PUSH_PROMISE, CONTINUATION):
            self.goaway(PROTOCOL_ERROR, b"unexpected frame")
            raise ConnectionClosed(f"unexpected frame type {kind}")
        # PRIORITY and unknown frame types are ignored, as RFC 9113 asks

    def _headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if flags & PADDED:
            payload = payload[1:len(payload) - payload[0]]
        if flags & PRIORITY_FLAG:
            payload = payload[5:]
        while not flags & END_HEADERS:  # CONTINUATION frames of the same stream follow at once
            kind, flags, continued, more = self._next_frame()
            if kind != CONTINUATION or continued != stream_id:
                self.goaway(PROTOCOL_ERROR, b"expected CONTINUATION")
                raise ConnectionClosed("a header block was interrupted")
            payload += more
        headers = self.decoder.decode(payload)  # decoded even for a refused stream: the table must follow
        stream = self.streams.get(stream_id)
        if stream is None:
            stream = self._open(stream_id, headers)
            if stream is None:
                return
        if flags & END_STREAM:
            self._ended(stream_id, stream)

    def _open(self, stream_id: int, headers: List[Tuple[str, str]]) -> Optional[_Stream]:
        """A new stream for a header block that opens none yet; None for one that cannot open: trailers
        of a stream already answered, a stream that is gone, or any while the server stops (refused)."""
        if stream_id % 2 == 0 or stream_id <= self.last_stream:
            return None
        self.last_stream = stream_id
        if self.server.stopping:
            self._write(frame(RST_STREAM, 0, stream_id, struct.pack(">I", REFUSED_STREAM)))
            return None
        stream = self.streams[stream_id] = _Stream(self.peer_initial_window)
        stream.headers = headers
        return stream

    def _data(self, flags: int, stream_id: int, payload: bytes) -> None:
        self._count(len(payload))
        stream = self.streams.get(stream_id)
        if stream is None or stream.ended:
            return  # a stream answered early (e.g. too large) or reset
        if flags & PADDED:
            payload = payload[1:len(payload) - payload[0]]
        if self._append(stream_id, stream, payload) and flags & END_STREAM:
            self._ended(stream_id, stream)

    def _count(self, size: int) -> None:
        """Flow control of what the client sent: our connection window reopened once half is used."""
        self.unacknowledged += size
        if self.unacknowledged > LARGEST_WINDOW // 2:
            self._write(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self.unacknowledged)))
            self.unacknowledged = 0

    def _append(self, stream_id: int, stream: _Stream, payload: bytes) -> bool:
        """Adds to a stream's message; False when that makes it larger than the limit (then answered
        RESOURCE_EXHAUSTED and reset)."""
        stream.body += payload
        if len(stream.body) <= self.server.max_receive + 5:
            return True
        with self.write_lock:
            self.streams.pop(stream_id, None)
        self._status(stream_id, stream, grpc.StatusCode.RESOURCE_EXHAUSTED,
                     f"Received message larger than max ({len(stream.body) - 5} vs. {self.server.max_receive})")
        self._write(frame(RST_STREAM, 0, stream_id, struct.pack(">I", NO_ERROR)))
        return False

    def _ended(self, stream_id: int, stream: _Stream) -> None:
        stream.ended = True
        self.ready.append((stream_id, stream))

    def _settings(self, payload: bytes) -> None:
        for offset in range(0, len(payload) - len(payload) % 6, 6):
            key, value = struct.unpack_from(">HI", payload, offset)
            if key == INITIAL_WINDOW_SIZE:
                with self.write_lock:
                    for stream in self.streams.values():
                        stream.send_window += value - self.peer_initial_window
                    self.peer_initial_window = value
                    self.window_opened.notify_all()
            elif key == MAX_FRAME_SIZE:
                self.peer_max_frame = value
        self._write(frame(SETTINGS, ACK, 0))

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        increment = struct.unpack(">I", payload)[0] & 0x7FFFFFFF
        with self.write_lock:
            if stream_id == 0:
                self.peer_window += increment
            elif stream_id in self.streams:
                self.streams[stream_id].send_window += increment
            self.window_opened.notify_all()

    def _dispatch(self) -> None:
        """A call that arrived alone runs here, with no thread handoff; calls that arrived together
        (or while others of this connection run) go to the pool, side by side."""
        ready, self.ready = self.ready, []
        if len(ready) == 1 and not self.on_pool:
            self._run(*ready[0])
            return
        for stream_id, stream in ready:
            with self.write_lock:
                self.on_pool += 1
            self.server.pool.submit(self._run_on_pool, stream_id, stream)

    def _run_on_pool(self, stream_id: int, stream: _Stream) -> None:
        try:
            self._run(stream_id, stream)
        finally:
            with self.write_lock:
                self.on_pool -= 1

    # --- a call ---------------------------------------------------------------------------------------
    def _run(self, stream_id: int, stream: _Stream) -> None:
        server = self.server
        if not server.enter():
            self._status(stream_id, stream, grpc.StatusCode.RESOURCE_EXHAUSTED, "Concurrent RPC limit exceeded!")
            return
        try:
            self._call(stream_id, stream)
        except (ConnectionClosed, OSError) as e:
            log.debug("gRPC call on stream %d of %s lost: %s", stream_id, self.peer, e)
        finally:
            server.leave()
            with self.write_lock:
                self.streams.pop(stream_id, None)

    def _plan(self, headers: List[Tuple[str, str]]) -> Tuple[Any, ...]:
        """What a header block asks for, worked out once per block (the decoder hands back the same list
        for the same block): (refusal, path, metadata, timeout, handler, encoding), the refusal a
        (code, details, extra trailers) when the call cannot run."""
        hit = self._plans.get(id(headers))
        if hit is not None and hit[0] is headers:
            return hit[1]
        plan = self._make_plan(headers)
        if len(self._plans) >= 32:
            self._plans.clear()
        self._plans[id(headers)] = (headers, plan)
        return plan

    def _make_plan(self, headers: List[Tuple[str, str]]) -> Tuple[Any, ...]:
        fields = dict(headers)
        path, encoding = fields.get(":path", ""), fields.get("grpc-encoding", "identity")
        if fields.get(":method") != "POST" or not fields.get("content-type", "").startswith("application/grpc"):
            return ((grpc.StatusCode.UNIMPLEMENTED,
                     f"not a gRPC call: {fields.get(':method')} {fields.get('content-type')}", b""),)
        metadata = tuple((key, base64.b64decode(value + "=" * (-len(value) % 4)) if key.endswith("-bin") else value)
                         for key, value in headers if key[0] != ":" and key not in RESERVED_METADATA)
        timeout = None
        if "grpc-timeout" in fields:
            try:
                timeout = parse_timeout(fields["grpc-timeout"])
            except ValueError as e:
                return ((grpc.StatusCode.INTERNAL, str(e), b""),)
        handler = self.server.handler(path, metadata)
        if handler is None:
            return ((grpc.StatusCode.UNIMPLEMENTED, "Method not found!", b""),)
        if handler.request_streaming or handler.response_streaming:
            return ((grpc.StatusCode.UNIMPLEMENTED, f"{path}: streaming calls are not served (unary calls only)",
                     b""),)
        if encoding not in ("identity", "gzip", "deflate"):
            encoding = ((grpc.StatusCode.UNIMPLEMENTED, f"Compression algorithm {encoding!r} is not supported",
                         ACCEPT_ENCODING),)
        return None, path, metadata, timeout, handler, encoding

    def _call(self, stream_id: int, stream: _Stream) -> None:
        plan = self._plan(stream.headers or [])
        if plan[0] is not None:
            return self._status(stream_id, stream, *plan[0])
        _, path, metadata, timeout, handler, encoding = plan
        deadline = None if timeout is None else time.monotonic() + timeout
        body = bytes(stream.body)
        if len(body) < 5 or len(body) != 5 + int.from_bytes(body[1:5], "big"):
            return self._status(stream_id, stream, grpc.StatusCode.INTERNAL,
                                "a unary call needs exactly one request message")
        message = body[5:]
        if body[0]:
            if isinstance(encoding, tuple):  # an encoding we do not read: refused once a message uses it
                return self._status(stream_id, stream, *encoding[0])
            if encoding == "identity":
                return self._status(stream_id, stream, grpc.StatusCode.INTERNAL,
                                    "a compressed message without grpc-encoding")
            try:
                message = zlib.decompress(message, 31 if encoding == "gzip" else 15)
            except zlib.error as e:
                return self._status(stream_id, stream, grpc.StatusCode.INTERNAL, f"cannot decompress: {e}")
        if deadline is not None and time.monotonic() >= deadline:
            return self._status(stream_id, stream, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        try:
            request = handler.request_deserializer(message) if handler.request_deserializer else message
        except Exception:  # noqa: BLE001 (any parse failure of the client's bytes is the client's error)
            return self._status(stream_id, stream, grpc.StatusCode.INTERNAL, "Exception deserializing request!")
        context = CallContext(metadata, deadline, self.peer)
        try:
            response = handler.unary_unary(request, context)
            if context.code not in (None, grpc.StatusCode.OK):
                return self._status(stream_id, stream, context.code, context.details)
            payload = handler.response_serializer(response) if handler.response_serializer else response
        except RpcAborted as e:
            return self._status(stream_id, stream, e.code, e.details)
        except Exception as e:  # noqa: BLE001 (a servicer's bug answers UNKNOWN, as grpcio does, and is logged)
            log.exception("gRPC %s failed", path)
            return self._status(stream_id, stream, grpc.StatusCode.UNKNOWN, f"Exception calling application: {e}")
        self._answer(stream_id, stream, payload)

    def _answer(self, stream_id: int, stream: _Stream, payload: bytes) -> None:
        size = 5 + len(payload)  # the gRPC message: compressed flag, length, payload
        with self.write_lock:
            if size <= min(self.peer_window, stream.send_window, self.peer_max_frame):
                self.peer_window -= size
                stream.send_window -= size
                stream.answered = True
                sid = stream_id.to_bytes(4, "big")  # headers, one DATA frame and trailers, joined at once
                self.io.sendall(b"".join((ANSWER_HEAD, sid, RESPONSE_HEADERS, size.to_bytes(3, "big"), b"\x00\x00",
                                          sid, b"\x00", len(payload).to_bytes(4, "big"), payload, OK_TRAILERS_HEAD,
                                          sid, OK_TRAILERS)))
                return
            self.io.sendall(frame(HEADERS, END_HEADERS, stream_id, RESPONSE_HEADERS))
        data = b"\x00" + len(payload).to_bytes(4, "big") + payload
        trailers = frame(HEADERS, END_HEADERS | END_STREAM, stream_id, OK_TRAILERS)
        sent = 0
        while sent < len(data):  # larger than the client lets us send at once: as its windows open
            with self.write_lock:
                size = min(self.peer_window, stream.send_window, self.peer_max_frame, len(data) - sent)
                if size > 0:
                    self.peer_window -= size
                    stream.send_window -= size
                    self.io.sendall(frame(DATA, 0, stream_id, data[sent:sent + size]))
                    sent += size
                    continue
                if threading.current_thread() is not self.reader:
                    if self.closing or not self.window_opened.wait(timeout=self.server.idle_timeout):
                        raise ConnectionClosed("the client's flow-control window stayed closed")
                    continue
            self._handle(*self._next_frame())  # the reading thread itself waits: it reads the WINDOW_UPDATE
        stream.answered = True
        self._write(trailers)

    def _status(self, stream_id: int, stream: _Stream, code: grpc.StatusCode, details: str,
                extra: bytes = b"") -> None:
        """An error answer: trailers only (headers, status and message in one frame that ends the stream)."""
        block = (RESPONSE_HEADERS + literal(b"grpc-status", str(STATUS[code]).encode())
                 + literal(b"grpc-message", percent_encode(details)) + extra)
        stream.answered = True
        self._write(frame(HEADERS, END_HEADERS | END_STREAM, stream_id, block))

    def _write(self, data: bytes) -> None:
        with self.write_lock:
            self.io.sendall(data)

    def goaway(self, code: int, debug: bytes = b"") -> None:
        try:
            self._write(frame(GOAWAY, 0, 0, struct.pack(">II", self.last_stream, code) + debug))
        except OSError:
            pass


class Http2GrpcServer:
    """grpc.Server's surface that serving uses: add_generic_rpc_handlers (and
    add_registered_method_handlers, as generated code of newer grpcio calls it), start, stop(grace),
    and the bound port."""

    def __init__(self, host: str, port: int, *, max_workers: int = 16, max_concurrent_rpcs: int = 256,
                 max_receive: int = 4 * 1024 * 1024, max_connections: int = 1024, idle_timeout: float = 30.0,
                 tls: Optional[ssl.SSLContext] = None):
        self.max_concurrent_rpcs, self.max_receive = max_concurrent_rpcs, max_receive
        self.max_connections, self.idle_timeout, self.tls = max_connections, idle_timeout, tls
        if tls is not None:
            tls.set_alpn_protocols(["h2"])
        self.pool = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc")
        self._generic: List[Any] = []
        self._methods: Dict[str, Any] = {}
        self._lock = threading.Lock()
        self._in_flight = 0
        self._connections: Dict[_Connection, None] = {}
        self.stopping = False
        self._stopped = threading.Event()
        self._listener = socket.create_server((host, port), backlog=1024,
                                              family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.bound_port: int = self._listener.getsockname()[1]

    # grpc.Server's registration surface
    def add_generic_rpc_handlers(self, handlers: Iterable[Any]) -> None:
        self._generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Dict[str, Any]) -> None:
        self._methods.update({f"/{service}/{method}": handler for method, handler in handlers.items()})

    def handler(self, path: str, metadata: Tuple[Tuple[str, Any], ...]) -> Optional[Any]:
        found = self._methods.get(path)
        if found is None:
            details = _HandlerCallDetails(path, metadata)
            found = next((h for h in (g.service(details) for g in self._generic) if h is not None), None)
            if found is not None:
                self._methods[path] = found  # the handlers are fixed once the server starts
        return found

    def enter(self) -> bool:
        with self._lock:
            if self._in_flight >= self.max_concurrent_rpcs:
                return False
            self._in_flight += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def start(self) -> None:
        threading.Thread(target=self._accept, name="grpc-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping:
            try:
                sock, address = self._listener.accept()
            except OSError:
                break
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(sock, f"ipv4:{address[0]}:{address[1]}"),
                             name="grpc-connection", daemon=True).start()

    def _serve(self, sock: socket.socket, peer: str) -> None:
        if self.tls is not None:
            try:
                sock.settimeout(TLS_HANDSHAKE_SECONDS)
                sock = self.tls.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError) as e:
                log.debug("gRPC TLS handshake with %s failed: %s", peer, e)
                sock.close()
                return
        connection = _Connection(self, sock, peer)
        with self._lock:
            full = len(self._connections) >= self.max_connections or self.stopping
            if not full:
                self._connections[connection] = None
        if full:  # the server's preface, then GOAWAY saying why
            try:
                connection.io.sendall(frame(SETTINGS, 0, 0))
            except OSError:
                pass
            connection.goaway(ENHANCE_YOUR_CALM, f"Too many connections (the limit is {self.max_connections})"
                              .encode())
            sock.close()
            return
        try:
            connection.serve()
        finally:
            with self._lock:
                self._connections.pop(connection, None)

    def stop(self, grace: Optional[float] = None) -> threading.Event:
        """No new connection or call; calls in flight get ``grace`` seconds, then every connection closes."""
        self.stopping = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close alone does not)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.goaway(NO_ERROR, b"server stopping")
        deadline = time.monotonic() + (grace or 0)
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        for connection in connections:
            connection.closing = True
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.pool.shutdown(wait=False)
        self._stopped.set()
        return self._stopped

    def wait_for_termination(self, timeout: Optional[float] = None) -> bool:
        return self._stopped.wait(timeout)


