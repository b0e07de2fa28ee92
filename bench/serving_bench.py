"""`make bench` (serving part): batch-1 throughput and latency of `mlops serve` over REST and gRPC,
side by side with `mlflow models serve` on the same SavedModel, and with server-side batching at
1, 4 and 16 concurrent clients.

The model is the default job's (the home recorded in bench/results/pipeline.json, else a fresh
run). Servers run as their own processes on loopback; clients are separate processes (persistent
connections, pre-encoded requests) so client and server do not share a GIL. Clients are lean load
generators, as wrk and ghz are (Python's http.client and grpcio's client are measured beside them);
4 concurrent clients are 4 client processes over either API, as the goal's "4 clients" reads (2 gRPC
clients with 2 calls in flight each are measured beside them); 16 gRPC clients are calls kept in flight
on 2 client processes (16 processes on 2 cores would measure the clients). Every load is a fixed number
of requests; the loads the goals compare (1 and 4 clients, and `mlflow models serve`'s, which runs beside
ours while they are measured) run three rounds each, alternated round by round, and report their median
round, every round's req/s beside it. The server runs with its defaults. Beside the loads: where one
request's time goes (each server step in a loop, the session call alone being the physical limit)
and the transport's own floor (servers answering fixed bytes to the same clients). Writes
bench/results/serving.json and serving.md; numbers are reported, never asserted.
"""
import argparse
import csv
import http.client
import json
import multiprocessing
import os
import platform
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from itertools import starmap
from pathlib import Path
from typing import Any, Deque, Dict, List, Optional, Tuple

from components import LEGACY_KERAS_ENV

RESULTS = Path(__file__).resolve().parent / "results"
READY = re.compile(r"REST http://127\.0\.0\.1:(\d+)\s+gRPC 127\.0\.0\.1:(\d+)")
PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
WARMUP_REQUESTS = 30
IDLE_CONNECTIONS = 800


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- client workers (run in their own processes; no TensorFlow import) -------------------------------

class _SocketReader:
    """What both lean clients read with: ``self.sock``'s bytes appended to ``self.buffer``."""

    sock: Optional[socket.socket]
    buffer: Any

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk


class _LeanHttpClient(_SocketReader):
    """A load generator's HTTP/1.1 client, as wrk's: one keep-alive socket, the request's bytes built
    once, the answer read by its Content-Length (or chunks) and its status taken from the status line.
    Python's http.client spends ~300 us of CPU per request here (a lean client ~80): that cost is the
    client's, not the server's, and on 2 cores it is paid inside every round trip."""

    def __init__(self, port: int, path: str, body: bytes, timeout: float = 60):
        self.address, self.timeout, self.sock, self.buffer = ("127.0.0.1", port), timeout, None, b""
        self.request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    def _read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._receive()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._receive()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def post(self) -> int:
        """One request and its whole answer; the status code."""
        if self.sock is None:
            self.sock, self.buffer = socket.create_connection(self.address, timeout=self.timeout), b""
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(self.request)
        status = int(self._read_line().split(b" ", 2)[1])
        fields = {}
        for line in iter(self._read_line, b""):
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip().lower()
        if fields.get(b"transfer-encoding") == b"chunked":
            for size in iter(lambda: int(self._read_line().split(b";")[0], 16), 0):
                self._read(size + 2)
            while self._read_line():  # trailers
                pass
        else:
            self._read(int(fields.get(b"content-length", 0)))
        if fields.get(b"connection") == b"close":
            self.close()
        return status

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None


class _LeanGrpcClient(_SocketReader):
    """A load generator's gRPC client, as ghz or h2load are: one HTTP/2 connection on a plain socket, the
    request's HEADERS (HPACK literals, no table) and DATA frames built once, ``send`` and ``wait`` so
    several calls can be in flight. A call succeeds when its answer carries one whole gRPC message (an
    error is a trailers-only answer or a RST_STREAM). grpcio's own client is measured beside
    it: its per-call CPU on 2 cores is paid inside every round trip, as http.client's is."""

    PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
    END_STREAM = ACK = 0x1
    END_HEADERS = 0x4
    LARGEST_WINDOW = 2 ** 31 - 1

    def __init__(self, port: int, method: str, message: bytes, timeout: float = 60):
        def literal(index: int, value: bytes) -> bytes:  # HPACK: literal without indexing, name from the static table
            assert len(value) < 127
            return (bytes([index]) if index < 15 else bytes([15, index - 15])) + bytes([len(value)]) + value

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.header_block = (b"\x83\x86"  # :method POST, :scheme http
                             + literal(4, method.encode()) + literal(1, f"127.0.0.1:{port}".encode())
                             + literal(31, b"application/grpc") + b"\x00\x02te\x08trailers")
        self.body = b"\x00" + struct.pack(">I", len(message)) + message
        self.buffer, self.next_stream, self.send_window, self.unacknowledged = bytearray(), 1, 65535, 0
        self.answers: Dict[int, Optional[bytes]] = {}
        self.ended: Deque[int] = deque()  # streams ended by frames read but not yet waited for
        self._headers_head = self._frame(self.HEADERS, self.END_HEADERS, 0, self.header_block)[:5]
        self._data_head = self._frame(self.DATA, self.END_STREAM, 0, self.body)[:5]
        # Our receive windows as large as HTTP/2 allows: the server never waits on this client.
        self.sock.sendall(self.PREFACE + self._frame(self.SETTINGS, 0, 0, struct.pack(">HI", 4, self.LARGEST_WINDOW))
                          + self._frame(self.WINDOW_UPDATE, 0, 0, struct.pack(">I", self.LARGEST_WINDOW - 65535)))

    @staticmethod
    def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
        return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", stream) + payload

    def _read_frames(self) -> List[Tuple[int, int, int, bytes]]:
        """Every whole frame buffered (reading until there is one), consumed in one step: h2load's way,
        a pass over the bytes rather than a copy and a shift per frame."""
        while True:
            buffer, frames, i = self.buffer, [], 0
            size = len(buffer)
            while size - i >= 9:
                end = i + 9 + int.from_bytes(buffer[i:i + 3], "big")
                if end > size:
                    break
                frames.append((buffer[i + 3], buffer[i + 4],
                               int.from_bytes(buffer[i + 5:i + 9], "big") & self.LARGEST_WINDOW, buffer[i + 9:end]))
                i = end
            if frames:
                del buffer[:i]
                return frames
            self._receive()

    def _handle(self, kind: int, flags: int, stream: int, payload: bytes) -> Optional[int]:
        """One frame from the server; the stream it ended, if any."""
        if kind == self.DATA:
            self.unacknowledged += len(payload)
            if self.unacknowledged > 1 << 30:
                self.sock.sendall(self._frame(self.WINDOW_UPDATE, 0, 0, struct.pack(">I", self.unacknowledged)))
                self.unacknowledged = 0
            if stream in self.answers:
                self.answers[stream] = (self.answers[stream] or b"") + payload
            return stream if flags & self.END_STREAM else None
        if kind == self.HEADERS:
            return stream if flags & self.END_STREAM else None
        if kind == self.SETTINGS and not flags & self.ACK:
            self.sock.sendall(self._frame(self.SETTINGS, self.ACK, 0))
        elif kind == self.PING and not flags & self.ACK:
            self.sock.sendall(self._frame(self.PING, self.ACK, 0, payload))
        elif kind == self.WINDOW_UPDATE and stream == 0:
            self.send_window += int.from_bytes(payload, "big") & self.LARGEST_WINDOW
        elif kind == self.RST_STREAM:
            self.answers[stream] = None
            return stream
        elif kind == self.GOAWAY:
            raise ConnectionError("the server sent GOAWAY")
        return None

    def send(self) -> int:
        """Starts one call; its stream id."""
        while self.send_window < len(self.body):
            self.ended.extend(filter(None, starmap(self._handle, self._read_frames())))
        self.send_window -= len(self.body)
        stream, self.next_stream = self.next_stream, self.next_stream + 2
        self.answers[stream] = None
        sid = stream.to_bytes(4, "big")  # the frames' bytes but the stream id were built once
        self.sock.sendall(b"".join((self._headers_head, sid, self.header_block, self._data_head, sid, self.body)))
        return stream

    def wait(self) -> Tuple[int, bool]:
        """Reads until a call ends: (its stream id, whether it answered one whole gRPC message)."""
        while True:
            if not self.ended:
                self.ended.extend(filter(None, starmap(self._handle, self._read_frames())))
                continue
            stream = self.ended.popleft()
            if stream in self.answers:
                answer = self.answers.pop(stream)
                return stream, (answer is not None and len(answer) >= 5
                                and int.from_bytes(answer[1:5], "big") == len(answer) - 5)

    def close(self) -> None:
        self.sock.close()


def _http_worker(args) -> Dict[str, object]:
    """``count`` requests one after another on one connection; ``client`` is "lean" (the load
    generator above) or "http.client" (Python's own, for reference)."""
    port, path, body, count, *rest = args
    client = rest[0] if rest else "lean"
    if client == "lean":
        lean = _LeanHttpClient(port, path, body)
        send, reset = lean.post, lean.close
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json"}

        def send() -> int:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            return response.status

        reset = connection.close
    latencies, errors = [], 0

    def one() -> bool:
        """One request; a timeout or a dropped connection is an error (and a new connection), not the
        end of the load."""
        try:
            return send() == 200
        except (OSError, ValueError, IndexError, http.client.HTTPException):
            reset()
            return False

    for _ in range(WARMUP_REQUESTS):
        one()
    start = time.perf_counter()
    for _ in range(count):
        t = time.perf_counter()
        errors += not one()
        latencies.append(time.perf_counter() - t)
    reset()
    return {"latencies": latencies, "start": start, "end": time.perf_counter(), "errors": errors}


def _grpc_worker(args) -> Dict[str, object]:
    """``count`` Predict calls with ``in_flight`` outstanding at all times on one connection (concurrent
    clients without a process each: 16 client processes on 2 cores would measure the clients);
    ``client`` is "lean" (the load generator above) or "grpcio" (grpcio's own, raw bytes in and out)."""
    port, request, count, client, in_flight = args
    if client == "lean":
        lean = _LeanGrpcClient(port, PREDICT_METHOD, request)
        send, close = lean.send, lean.close

        def results():
            while True:
                yield lean.wait()
    else:
        import grpc

        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        predict = channel.unary_unary(PREDICT_METHOD)  # no protobuf/TF import here
        calls: deque = deque()
        close = channel.close

        def send():
            calls.append(predict.future(request, timeout=60))
            return calls[-1]

        def results():
            while True:
                call = calls.popleft()
                try:
                    call.result()
                    yield call, True
                except grpc.RpcError:
                    yield call, False

    answers = results()
    for _ in range(WARMUP_REQUESTS):
        send()
        next(answers)
    latencies, errors, issued, sent = [], 0, {}, 0
    start = time.perf_counter()
    while len(latencies) < count:
        while sent < count and len(issued) < in_flight:
            started = time.perf_counter()
            issued[send()] = started
            sent += 1
        call, ok = next(answers)
        latencies.append(time.perf_counter() - issued.pop(call))
        errors += not ok
    end = time.perf_counter()
    close()
    return {"latencies": latencies, "start": start, "end": end, "errors": errors}


def _idle_holder(args) -> int:
    """Opens ``count`` connections that send nothing, touches ``ready`` once all are open, and holds them
    until ``release`` exists (at most ``seconds``): abuse by idle clients."""
    port, count, ready, release, seconds = args
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    Path(ready).touch()
    deadline = time.monotonic() + seconds
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    for s in sockets:
        s.close()
    return len(sockets)


def _with_idle_connections(pool, rest: tuple, n: int, workdir: Path, rounds: int = 3) -> Dict[str, Dict[str, object]]:
    """1-client REST loads without and with ``IDLE_CONNECTIONS`` idle connections open, alternated
    ``rounds`` times (the connections opened and closed each round), so each pair is measured in the
    same minute and the host's drift does not fall on one side; the median round of each side."""
    without, held = [], []
    for round_number in range(rounds):
        without.append(_load(pool, _http_worker, (*rest, n), 1))
        ready, release = workdir / f"idle-ready-{round_number}", workdir / f"idle-release-{round_number}"
        holder = pool.apply_async(_idle_holder, ((rest[0], IDLE_CONNECTIONS, str(ready), str(release), 300.0),))
        deadline = time.monotonic() + 120
        while not ready.exists():
            if holder.ready() or time.monotonic() > deadline:
                raise RuntimeError(f"the idle-connection holder did not open {IDLE_CONNECTIONS} connections: "
                                   f"{holder.get(timeout=1) if holder.ready() else 'timed out'}")
            time.sleep(0.1)
        time.sleep(1.0)  # the server has accepted them all (each holds a server thread until its read timeout)
        try:
            held.append(_load(pool, _http_worker, (*rest, n), 1))
        finally:
            release.touch()
        holder.get(timeout=60)
        time.sleep(1.0)  # the server has seen them close
    return {"mlops REST, 1 client, rounds without the idle connections": _median_round(without),
            f"mlops REST, 1 client, {IDLE_CONNECTIONS} idle connections": _median_round(held)}


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def _soak(pool, rest: tuple, pid: int, seconds: float) -> Dict[str, float]:
    """Full load (4 REST clients) for ``seconds``, in rounds; the server's RSS after the first round and
    at the end (memory must stay flat)."""
    port, path, body = rest
    first = _load(pool, _http_worker, (port, path, body, 500), 4)
    start_mb, started, rounds, requests = _rss_mb(pid), time.monotonic(), 0, first["requests"]
    while time.monotonic() - started < seconds:
        requests += _load(pool, _http_worker, (port, path, body, 500), 4)["requests"]
        rounds += 1
    end_mb = _rss_mb(pid)
    return {"seconds": round(time.monotonic() - started, 1), "requests": requests, "rss_start_mb": round(start_mb, 1),
            "rss_end_mb": round(end_mb, 1), "rss_growth_pct": round(100 * (end_mb - start_mb) / start_mb, 1)}


def _alternated(pool, loads: Dict[str, tuple], rounds: int = 3) -> Dict[str, Dict[str, object]]:
    """Loads whose ratios are goals, by name -> (worker, args, processes): each round runs every load
    once, the order reversed every other round, so the host's drift falls on all sides alike; the
    median round of each."""
    done: Dict[str, List[Dict[str, float]]] = {name: [] for name in loads}
    for round_number in range(rounds):
        for name in (list(loads) if round_number % 2 == 0 else list(reversed(loads))):
            worker, args, processes = loads[name]
            done[name].append(_load(pool, worker, args, processes))
    return {name: _median_round(done[name]) for name in loads}


def _median_round(rounds: List[Dict[str, float]]) -> Dict[str, object]:
    """The median round by req/s, every round's req/s beside it, and the median of the rounds' p99s."""
    loads = sorted(rounds, key=lambda load: load["req_per_s"])
    p99s = sorted(load["p99_ms"] for load in loads)
    return {**loads[len(loads) // 2], "rounds_req_per_s": [load["req_per_s"] for load in loads],
            "median_p99_ms": p99s[len(p99s) // 2]}


def _load(pool, worker, args: tuple, processes: int, in_flight: int = 1) -> Dict[str, float]:
    clients = processes * in_flight
    if worker is _grpc_worker:
        args = (*args, in_flight)
    results = pool.map(worker, [args] * processes, chunksize=1)
    latencies = sorted(x for r in results for x in r["latencies"])
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {"clients": clients, "requests": len(latencies), "errors": sum(r["errors"] for r in results),
            "req_per_s": round(len(latencies) / wall, 1), "p50_ms": round(pick(0.50), 2),
            "p99_ms": round(pick(0.99), 2)}


# --- where a request's time goes ------------------------------------------------------------------

def _echo_http(ready) -> None:
    """An HTTP/1.1 server that reads a body and answers fixed bytes: the transport's own cost."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Echo(BaseHTTPRequestHandler):
        protocol_version, disable_nagle_algorithm = "HTTP/1.1", True

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b'{"predictions":[[0.5]]}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    ready.put(server.server_address[1])
    server.serve_forever()


def _echo_grpc(ready, server_kind: str = "ours") -> None:
    """A gRPC server whose Predict answers fixed bytes: the transport's own cost. ``server_kind``: "ours"
    (serving.grpc_http2, what `mlops serve` runs) or "grpcio" (grpcio's own server, for comparison)."""
    from concurrent import futures

    import grpc

    from serving.grpc_http2 import Http2GrpcServer

    service, method = PREDICT_METHOD.strip("/").split("/")
    handlers = grpc.method_handlers_generic_handler(service, {
        method: grpc.unary_unary_rpc_method_handler(lambda request, context: b"")})
    if server_kind == "grpcio":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        server = Http2GrpcServer("127.0.0.1", 0)
        port = server.bound_port
    server.add_generic_rpc_handlers((handlers,))
    server.start()
    ready.put(port)
    server.wait_for_termination()


def _transport_floor(pool, rest_body: bytes, grpc_request: bytes, n: int) -> Dict[str, Dict[str, float]]:
    context = multiprocessing.get_context("spawn")
    floors = {}
    for name, target, target_args, worker, args in (
            ("HTTP/1.1 echo (stdlib server), 1 client", _echo_http, (), _http_worker, ("/echo", rest_body, n)),
            ("HTTP/1.1 echo (stdlib server), 1 client, Python http.client", _echo_http, (), _http_worker,
             ("/echo", rest_body, n, "http.client")),
            ("gRPC echo (our HTTP/2 server), 1 client", _echo_grpc, ("ours",), _grpc_worker,
             (grpc_request, n, "lean")),
            ("gRPC echo (our HTTP/2 server), 1 client, grpcio client", _echo_grpc, ("ours",), _grpc_worker,
             (grpc_request, n, "grpcio")),
            ("gRPC echo (grpcio server), 1 client", _echo_grpc, ("grpcio",), _grpc_worker,
             (grpc_request, n, "lean")),
            ("gRPC echo (grpcio server), 1 client, grpcio client", _echo_grpc, ("grpcio",), _grpc_worker,
             (grpc_request, n, "grpcio"))):
        ready = context.Queue()
        process = context.Process(target=target, args=(ready, *target_args), daemon=True)
        process.start()
        try:
            floors[name] = _load(pool, worker, (ready.get(timeout=60), *args), 1)
        finally:
            process.kill()
            process.join(10)
    return floors


def _per_call_us(function, calls: int = 1000, rounds: int = 3) -> float:
    """Microseconds per call: the best of a few rounds, after a warm-up."""
    for _ in range(100):
        function()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        best = min(best, (time.perf_counter() - start) / calls)
    return round(best * 1e6, 1)


def _stages(model_dir: Path, rest_body: bytes, grpc_request: bytes) -> Dict[str, float]:
    """The server's steps for one request, each in a loop in this process: the session call alone is
    the physical limit; the rest is what the server adds around it."""
    from serving.api.tfserving_grpc import PredictReader, predict_response
    from serving.codec import tensors
    from serving.runtime.servable import DEFAULT_SIGNATURE, Servable

    servable = Servable("fraud", int(model_dir.name), model_dir, timeout_s=30)
    signature = servable.signature(DEFAULT_SIGNATURE)
    document = json.loads(rest_body)
    inputs = tensors.request_inputs(servable.columns.rename_document(document), signature)[0]
    names, output_names = tuple(sorted(inputs)), tuple(sorted(signature.outputs))
    call = servable._callable(signature, names, output_names)
    arrays = [inputs[name] for name in names]
    outputs = servable.run(DEFAULT_SIGNATURE, inputs)

    reader = PredictReader()

    def grpc_decode():  # as the server reads a Predict: a walk over entry heads the first request taught
        return tensors.cast_inputs(servable.columns.rename(reader(grpc_request).inputs), signature)

    def grpc_encode():
        return predict_response(servable, DEFAULT_SIGNATURE, outputs)

    try:
        return {
            "session call alone, through TF's thread pool": _per_call_us(lambda: call.pooled(*arrays)),
            "session call alone, in the caller's thread (the physical limit)": _per_call_us(
                lambda: call.inline(*arrays)),
            "Servable.run: input checks + session call": _per_call_us(lambda: servable.run(DEFAULT_SIGNATURE, inputs)),
            "REST decode: JSON -> arrays": _per_call_us(lambda: tensors.request_inputs(
                servable.columns.rename_document(tensors.parse_json(rest_body)), signature)),
            "REST encode: arrays -> JSON": _per_call_us(lambda: tensors.dumps(tensors.response_json(outputs, True))),
            "gRPC decode: PredictRequest -> arrays": _per_call_us(grpc_decode),
            "gRPC encode: arrays -> PredictResponse": _per_call_us(grpc_encode),
        }
    finally:
        servable.close()


# --- servers -----------------------------------------------------------------------------------

def _drain(stream) -> None:
    """Reads a server's output to its end. Unread, the pipe fills and a server that logs every request
    blocks on its next line: uvicorn does, which had `mlflow models serve` stall for good at 4 clients
    (its connections left unread in CLOSE-WAIT, its event loop in a pipe write)."""
    for _ in stream:
        pass


def _start(command: List[str], ready, timeout: float = 300, env: Optional[dict] = None):
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + timeout
    output = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            raise RuntimeError("server exited:\n" + "".join(output[-30:]))
        output.append(line)
        found = ready(line)
        if found:
            threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
            return process, found
    process.kill()
    raise RuntimeError("server did not start:\n" + "".join(output[-30:]))


def _stop(process) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def _mlops_serve(serving_dir: Path, batching: bool, *options: str):
    command = [sys.executable, "-m", "cli.main", "serve", "--serving-dir", str(serving_dir),
               "--rest-port", "0", "--grpc-port", "0"] + (["--enable-batching"] if batching else []) + list(options)
    process, match = _start(command, READY.search)
    return process, int(match.group(1)), int(match.group(2))


def _mlflow_serve(model_dir: Path, workdir: Path):
    from serving.pyfunc import save_pyfunc

    pyfunc_dir = save_pyfunc(model_dir, workdir / "pyfunc")
    port = _free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
           LEGACY_KERAS_ENV: "1"}
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(pyfunc_dir), "-p", str(port),
               "--host", "127.0.0.1", "--env-manager", "local"]
    process, _ = _start(command, lambda line: "Uvicorn running" in line or "Listening at" in line, env=env)
    for _ in range(120):  # the app answers /ping once the model is loaded
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                break
        except OSError:
            pass
        time.sleep(1)
    return process, port


# --- main --------------------------------------------------------------------------------------

def _default_model(home: Optional[Path]) -> Path:
    recorded = RESULTS / "pipeline.json"
    if home is None and recorded.exists():
        home = Path(json.loads(recorded.read_text()).get("home", "/nonexistent"))
    if home is None or not any((home / "serving" / "fraud").glob("[0-9]*")):
        from cli.main import main as cli_main

        home = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
        cli_main(["run", "--home", str(home), "--no-tracking"])
    return max((home / "serving" / "fraud").glob("[0-9]*"), key=lambda p: int(p.name))


def _requests(model_dir: Path, data_csv: Path):
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from serving.codec.signature import tensor_spec
    from serving.runtime.servable import read_signature_defs

    inputs = {n: tensor_spec(n, i) for n, i in read_signature_defs(model_dir)["serving_default"].inputs.items()}
    with data_csv.open() as f:
        row = next(csv.DictReader(f))
    instance = {name: float(row[name]) for name in inputs}
    rest_body = json.dumps({"instances": [instance]}).encode()
    grpc_request = predict_pb2.PredictRequest()
    grpc_request.model_spec.name = "fraud"
    for name, spec in inputs.items():
        grpc_request.inputs[name].CopyFrom(tf.make_tensor_proto(np.array([instance[name]],
                                                                           spec.dtype.as_numpy_dtype)))
    columns = list(instance)
    mlflow_body = json.dumps({"dataframe_split": {"columns": columns, "data": [[instance[c] for c in columns]]}})
    return rest_body, grpc_request.SerializeToString(), mlflow_body.encode(), len(inputs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="a home with a pushed 'fraud' model (default: the pipeline bench's)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per single-client load")
    parser.add_argument("--soak-seconds", type=float, default=600.0, help="full-load soak for the memory check")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    model_dir = _default_model(args.home)
    data_csv = model_dir.parents[2] / "data" / "fraud" / "fraud.csv"
    rest_body, grpc_request, mlflow_body, features = _requests(model_dir, data_csv)
    workdir = Path(tempfile.mkdtemp(prefix="mlops-serving-bench-"))
    serving_dir = workdir / "serving"
    (serving_dir / "fraud").mkdir(parents=True)
    shutil.copytree(model_dir, serving_dir / "fraud" / model_dir.name)

    n = args.requests
    stages = _stages(model_dir, rest_body, grpc_request)
    pool = multiprocessing.get_context("spawn").Pool(17)  # 16 clients + the idle-connection holder
    results: Dict[str, Dict[str, object]] = {}
    try:
        floors = _transport_floor(pool, rest_body, grpc_request, n)
        process, rest_port, grpc_port = _mlops_serve(serving_dir, batching=False)
        try:
            rest = (rest_port, "/v1/models/fraud:predict", rest_body)
            grpc = (grpc_port, grpc_request)
            mlflow_process, mlflow_port = _mlflow_serve(model_dir, workdir)
            try:  # the ratios to mlflow's with both servers up, round by round
                mlflow, few = (mlflow_port, "/invocations", mlflow_body), max(100, n // 8)
                results.update(_alternated(pool, {
                    "mlops REST, 1 client": (_http_worker, (*rest, n), 1),
                    "mlops gRPC, 1 client": (_grpc_worker, (*grpc, n, "lean"), 1),
                    "mlflow models serve, 1 client": (_http_worker, (*mlflow, few), 1)}))
                results.update(_alternated(pool, {
                    "mlops REST, 1 client, Python http.client": (_http_worker, (*rest, n, "http.client"), 1),
                    "mlops gRPC, 1 client, grpcio client": (_grpc_worker, (*grpc, n, "grpcio"), 1),
                    "mlflow models serve, 1 client, Python http.client": (_http_worker, (*mlflow, few, "http.client"),
                                                                          1)}))
                results["mlflow models serve, 4 clients"] = _load(pool, _http_worker, (*mlflow, max(50, n // 32)), 4)
            finally:
                _stop(mlflow_process)
            results.update(_alternated(pool, {
                "mlops REST, 4 clients": (_http_worker, (*rest, n // 4), 4),
                "mlops gRPC, 4 clients": (_grpc_worker, (*grpc, n // 4, "lean"), 4)}))
            results["mlops gRPC, 2 clients x 2 calls in flight"] = _load(pool, _grpc_worker,
                                                                        (*grpc, n // 2, "lean"), 2, 2)
            results["mlops gRPC, 16 clients"] = _load(pool, _grpc_worker, (*grpc, n // 2, "lean"), 2, 8)
            results.update(_with_idle_connections(pool, rest, n, workdir))
            soak = _soak(pool, rest, process.pid, args.soak_seconds)
        finally:
            _stop(process)
        process, rest_port, grpc_port = _mlops_serve(serving_dir, batching=True)
        try:
            grpc = (grpc_port, grpc_request)
            results["mlops gRPC batching, 1 clients"] = _load(pool, _grpc_worker, (*grpc, n, "lean"), 1)
            results["mlops gRPC batching, 4 clients"] = _load(pool, _grpc_worker, (*grpc, n // 2, "lean"), 2, 2)
            results["mlops gRPC batching, 16 clients"] = _load(pool, _grpc_worker, (*grpc, n // 2, "lean"), 2, 8)
            results["mlops REST batching, 16 clients"] = _load(
                pool, _http_worker, (rest_port, "/v1/models/fraud:predict", rest_body, max(100, n // 16)), 16)
        finally:
            _stop(process)
    finally:
        pool.close()
        shutil.rmtree(workdir, ignore_errors=True)

    mlflow_one = results["mlflow models serve, 1 client"]["req_per_s"]
    summary = {
        "rest_vs_mlflow_throughput_x": round(results["mlops REST, 1 client"]["req_per_s"] / mlflow_one, 1),
        "rest_vs_mlflow_throughput_x_python_http_client": round(
            results["mlops REST, 1 client, Python http.client"]["req_per_s"]
            / results["mlflow models serve, 1 client, Python http.client"]["req_per_s"], 1),
        "grpc_vs_mlflow_throughput_x": round(results["mlops gRPC, 1 client"]["req_per_s"] / mlflow_one, 1),
        "grpc_vs_rest_x": round(results["mlops gRPC, 1 client"]["req_per_s"]
                                / results["mlops REST, 1 client"]["req_per_s"], 2),
        "grpc_vs_rest_x_library_clients": round(results["mlops gRPC, 1 client, grpcio client"]["req_per_s"]
                                                / results["mlops REST, 1 client, Python http.client"]["req_per_s"], 2),
        "grpc_at_least_rest": (results["mlops gRPC, 1 client"]["req_per_s"]
                               >= results["mlops REST, 1 client"]["req_per_s"]),
        "batching_throughput_by_clients": {c: results[f"mlops gRPC batching, {c} clients"]["req_per_s"]
                                           for c in (1, 4, 16)},
        "p99_4_clients_ms": {"rest": results["mlops REST, 4 clients"]["p99_ms"],
                             "grpc": results["mlops gRPC, 4 clients"]["p99_ms"]},
        "p99_with_idle_connections_x": round(
            results[f"mlops REST, 1 client, {IDLE_CONNECTIONS} idle connections"]["median_p99_ms"]
            / results["mlops REST, 1 client, rounds without the idle connections"]["median_p99_ms"], 2),
        "soak": soak,
        "session_call_limit_req_per_s": round(
            1e6 / stages["session call alone, in the caller's thread (the physical limit)"], 1),
    }
    report = {"model": str(model_dir), "features": features, "loads": results, "summary": summary,
              "stages_us": stages, "transport_floor": floors,
              "machine": {"python": sys.version.split()[0], "cpus": os.cpu_count(), "platform": platform.platform()},
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# Serving benchmark ({features}-feature default model, batch 1, loopback)", "",
             "| load | clients | requests | errors | req/s | p50 ms | p99 ms |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        rounds = f" (rounds {', '.join(map(str, r['rounds_req_per_s']))})" if "rounds_req_per_s" in r else ""
        lines.append(f"| {name} | {r['clients']} | {r['requests']} | {r['errors']} | {r['req_per_s']}{rounds} | "
                     f"{r['p50_ms']} | {r['p99_ms']} |")
    lines += ["", f"REST vs `mlflow models serve` (1 client): {summary['rest_vs_mlflow_throughput_x']}x; "
                  f"gRPC: {summary['grpc_vs_mlflow_throughput_x']}x. With Python's http.client as the client "
                  f"of both: {summary['rest_vs_mlflow_throughput_x_python_http_client']}x.",
              f"gRPC vs REST (1 client): {summary['grpc_vs_rest_x']}x with the lean clients of both; "
              f"{summary['grpc_vs_rest_x_library_clients']}x with grpcio's client against Python's http.client.",
              f"Batching, gRPC req/s at 1/4/16 clients: {summary['batching_throughput_by_clients']}.",
              f"p99 at 4 clients: REST {summary['p99_4_clients_ms']['rest']} ms, gRPC "
              f"{summary['p99_4_clients_ms']['grpc']} ms. With {IDLE_CONNECTIONS} idle connections open, the "
              f"1-client REST p99 (median of 3 rounds) is {summary['p99_with_idle_connections_x']}x the p99 "
              "of the rounds without them (alternated, 3 each).",
              f"Soak: {soak['requests']} requests at 4 clients over {soak['seconds']} s; server RSS "
              f"{soak['rss_start_mb']} -> {soak['rss_end_mb']} MB ({soak['rss_growth_pct']:+}%).",
              "", "## Where a request's time goes", "",
              "Each step of the server's work in a loop, in one process (microseconds per call, best of 3 x 1000):",
              "", "| step | us |", "|---|---:|"]
    lines += [f"| {name} | {us} |" for name, us in stages.items()]
    lines += ["", f"The session call alone allows at most {summary['session_call_limit_req_per_s']} req/s on one "
                  "core: the physical limit of this model at batch 1.", "",
              "The transport alone, a server answering fixed bytes to the same clients (its own process):", "",
              "| load | req/s | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {r['req_per_s']} | {r['p50_ms']} | {r['p99_ms']} |" for name, r in floors.items()]
    lines += ["", f"Measured {report['measured_at']} on {report['machine']['cpus']} CPUs."]
    (RESULTS / "serving.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
