"""`make bench` (serving part): `mlops serve` side by side with the servers a user would deploy instead,
each serving the same default SavedModel on this machine, under the same load generator, in one run:
KServe's Python ModelServer (bench/kserve/model_server.py, a `kserve.Model` calling the SavedModel, in
.venv-kserve), `mlflow models serve`, `mlops serve --workers 2` (when the flag exists) and `mlops serve
--enable-batching`; the session call alone is the floor.

The model is the default job's (the home recorded in bench/results/pipeline.json, else a fresh run).
Every server runs as its own process on loopback, all of them up at once, each with its defaults (KServe
without its per-request latency log line). Loads: batch 1 and batch 32 rows per request, at 1, 8 and
32 concurrent clients; REST for every server (V1 `:predict` with TF Serving's `instances` body for
`mlops serve` and KServe alike, V2 `/infer` for both, mlflow's `/invocations`), gRPC for `mlops serve`
and KServe (V2 ModelInfer for both, and TF Serving's Predict for ours). A client is one connection with
one request in flight; clients are spread over 2 processes, each multiplexing its connections, as wrk
and ghz do, with lean clients (requests encoded once), so that the load generator's own CPU is small;
it is measured (cores used) beside the server's. Every load is bounded in count and time; every load
runs --rounds times, all loads in a round, the order reversed every other round so the host's drift
falls on all servers alike; the median round is reported with every round's req/s. Then a soak at 8
clients (the server's RSS after its first round and at its end). Writes bench/results/serving.json and
serving.md; numbers are reported, never asserted.
"""
import argparse
import csv
import http.client
import json
import multiprocessing
import os
import platform
import re
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from components import LEGACY_KERAS_ENV
from components.ports import free_port, free_ports

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
KSERVE_PYTHON = ROOT / ".venv-kserve" / "bin" / "python"
KSERVE_SERVER = ROOT / "bench" / "kserve" / "model_server.py"
READY = re.compile(r"REST http://127\.0\.0\.1:(\d+)\s+gRPC 127\.0\.0\.1:(\d+)")
MODEL = "fraud"
WARMUP_REQUESTS = 30  # per client process, before each load's timed part
ANSWER_TIMEOUT_S = 30.0  # no answer on any connection this long: the calls in flight failed
CLIENT_PROCESSES = 2
BATCHES = (1, 32)
CLIENTS = (1, 8, 32)

MLOPS, WORKERS, BATCHING = "mlops serve", "mlops serve --workers 2", "mlops serve --enable-batching"
KSERVE, MLFLOW = "KServe ModelServer", "mlflow models serve"
# API -> (transport, URL path or gRPC method)
APIS = {"REST V1": ("http", f"/v1/models/{MODEL}:predict"), "REST V2": ("http", f"/v2/models/{MODEL}/infer"),
        "gRPC V2": ("grpc", "/inference.GRPCInferenceService/ModelInfer"),
        "gRPC Predict": ("grpc", "/tensorflow.serving.PredictionService/Predict"),
        "REST /invocations": ("http", "/invocations")}
# server -> the loads it takes: (API, batch sizes, concurrent clients)
PLAN = {
    MLOPS: [(api, BATCHES, CLIENTS) for api in ("REST V1", "REST V2", "gRPC V2", "gRPC Predict")],
    WORKERS: [(api, BATCHES, (8, 32)) for api in ("REST V1", "gRPC V2")],
    BATCHING: [(api, (1,), CLIENTS) for api in ("REST V1", "gRPC V2")],
    KSERVE: [(api, BATCHES, CLIENTS) for api in ("REST V1", "REST V2", "gRPC V2")],
    MLFLOW: [("REST /invocations", BATCHES, CLIENTS)],
}


# --- client workers (run in their own processes; no TensorFlow import) -------------------------------

class _SocketReader:
    """What both lean clients read with: ``self.sock``'s bytes appended to ``self.buffer``; ``closed``
    once the server said it closes the connection (the worker then opens a new one)."""

    sock: socket.socket
    buffer: bytearray
    closed = False

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def _connect(port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _LeanHttpClient(_SocketReader):
    """A load generator's HTTP/1.1 client, as wrk's: one keep-alive connection, the request's bytes
    built once, ``send`` and ``poll`` (one read; the status once the whole answer, by its Content-Length
    or its chunks, is in). Python's http.client spends ~300 us of CPU per request (a lean client ~80):
    that cost would be the client's, paid inside every round trip on 2 cores."""

    def __init__(self, port: int, path: str, body: bytes, timeout: float = ANSWER_TIMEOUT_S):
        self.sock, self.buffer = _connect(port, timeout), bytearray()
        self.request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    def send(self) -> None:
        self.sock.sendall(self.request)

    def poll(self) -> Optional[bool]:
        """Reads what has arrived; whether the answer was a 200 once it is whole, else None."""
        self._receive()
        status = self._answer()
        return None if status is None else status == 200

    def _answer(self) -> Optional[int]:
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        status_line, *lines = bytes(self.buffer[:head_end]).split(b"\r\n")
        fields = {}
        for line in lines:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip().lower()
        if fields.get(b"transfer-encoding") == b"chunked":
            end = self._chunked_end(head_end + 4)
        else:
            end = head_end + 4 + int(fields.get(b"content-length", 0))
        if end is None or len(self.buffer) < end:
            return None
        del self.buffer[:end]
        self.closed = fields.get(b"connection") == b"close"
        return int(status_line.split(b" ", 2)[1])

    def _chunked_end(self, position: int) -> Optional[int]:
        """Where a chunked body starting at ``position`` ends (its trailers included), if all in."""
        size = None
        while size != 0:
            line_end = self.buffer.find(b"\r\n", position)
            if line_end < 0:
                return None
            size = int(bytes(self.buffer[position:line_end]).split(b";")[0], 16)
            position = line_end + 2 + (size + 2 if size else 0)
        while True:  # trailers, up to the empty line
            line_end = self.buffer.find(b"\r\n", position)
            if line_end < 0:
                return None
            if line_end == position:
                return position + 2
            position = line_end + 2


class _LeanGrpcClient(_SocketReader):
    """A load generator's gRPC client, as ghz or h2load are: one HTTP/2 connection on a plain socket, the
    request's HEADERS (HPACK literals, no table) and DATA frames built once, ``send`` and ``poll``. A
    call succeeds when its answer carries one whole gRPC message (an error is a trailers-only answer or
    a RST_STREAM). After a GOAWAY the calls the server will not answer fail and the connection is
    ``closed`` (the worker opens a new one), as a client whose server drains its connections sees."""

    PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
    END_STREAM = ACK = 0x1
    END_HEADERS = 0x4
    LARGEST_WINDOW = 2 ** 31 - 1

    def __init__(self, port: int, method: str, message: bytes, timeout: float = ANSWER_TIMEOUT_S):
        def literal(index: int, value: bytes) -> bytes:  # HPACK: literal without indexing, name from the static table
            assert len(value) < 127
            return (bytes([index]) if index < 15 else bytes([15, index - 15])) + bytes([len(value)]) + value

        self.sock = _connect(port, timeout)
        self.header_block = (b"\x83\x86"  # :method POST, :scheme http
                             + literal(4, method.encode()) + literal(1, f"127.0.0.1:{port}".encode())
                             + literal(31, b"application/grpc") + b"\x00\x02te\x08trailers")
        self.body = b"\x00" + struct.pack(">I", len(message)) + message
        self.buffer, self.next_stream, self.send_window, self.unacknowledged = bytearray(), 1, 65535, 0
        self.answers: Dict[int, Optional[bytes]] = {}
        self.ended: Deque[int] = deque()  # streams ended by frames read but not yet polled for
        self._headers_head = self._frame(self.HEADERS, self.END_HEADERS, 0, self.header_block)[:5]
        self._data_head = self._frame(self.DATA, self.END_STREAM, 0, self.body)[:5]
        # Our receive windows as large as HTTP/2 allows: the server never waits on this client.
        self.sock.sendall(self.PREFACE + self._frame(self.SETTINGS, 0, 0, struct.pack(">HI", 4, self.LARGEST_WINDOW))
                          + self._frame(self.WINDOW_UPDATE, 0, 0, struct.pack(">I", self.LARGEST_WINDOW - 65535)))

    @staticmethod
    def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
        return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", stream) + payload

    def _parse_frames(self) -> List[Tuple[int, int, int, bytes]]:
        """Every whole frame buffered, consumed in one step: h2load's way, a pass over the bytes rather
        than a copy and a shift per frame."""
        buffer, frames, i = self.buffer, [], 0
        size = len(buffer)
        while size - i >= 9:
            end = i + 9 + int.from_bytes(buffer[i:i + 3], "big")
            if end > size:
                break
            frames.append((buffer[i + 3], buffer[i + 4],
                           int.from_bytes(buffer[i + 5:i + 9], "big") & self.LARGEST_WINDOW, buffer[i + 9:end]))
            i = end
        del buffer[:i]
        return frames

    def _handle_all(self) -> None:
        self.ended.extend(stream for stream in (self._handle(*frame) for frame in self._parse_frames()) if stream)

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
            self.closed, last = True, int.from_bytes(payload[:4], "big") & self.LARGEST_WINDOW
            unanswered = [s for s in self.answers if s > last]
            self.answers.update(dict.fromkeys(unanswered))
            self.ended.extend(unanswered)
        return None

    def send(self) -> None:
        """Starts one call."""
        while self.send_window < len(self.body):
            self._receive()
            self._handle_all()
        self.send_window -= len(self.body)
        stream, self.next_stream = self.next_stream, self.next_stream + 2
        self.answers[stream] = None
        sid = stream.to_bytes(4, "big")  # the frames' bytes but the stream id were built once
        self.sock.sendall(b"".join((self._headers_head, sid, self.header_block, self._data_head, sid, self.body)))

    def poll(self) -> Optional[bool]:
        """Reads what has arrived; once a call has ended, whether it answered one whole gRPC message."""
        if not self.ended:
            self._receive()
            self._handle_all()
        while self.ended:
            stream = self.ended.popleft()
            if stream in self.answers:
                answer = self.answers.pop(stream)
                return (answer is not None and len(answer) >= 5
                        and int.from_bytes(answer[1:5], "big") == len(answer) - 5)
        return None


def _drive(clients: list, fresh: Callable[[], Any], count: int, deadline: float) -> Tuple[List[float], int]:
    """Keeps one request in flight on every connection until ``count`` are issued or ``deadline``
    passes, then awaits those in flight (at most ANSWER_TIMEOUT_S without any answer); the latencies of
    the answered ones and the number of failed ones. A connection that fails or is closed by the server
    is replaced by ``fresh()``."""
    selector = selectors.DefaultSelector()
    for i, client in enumerate(clients):
        selector.register(client.sock, selectors.EVENT_READ, i)
    latencies, failed, issued, sent_at = [], 0, 0, {}

    def replace(i: int) -> None:
        selector.unregister(clients[i].sock)
        clients[i].close()
        clients[i] = fresh()
        selector.register(clients[i].sock, selectors.EVENT_READ, i)

    def issue(i: int) -> None:
        nonlocal failed, issued
        if issued >= count or time.monotonic() > deadline:
            return
        issued += 1
        try:
            clients[i].send()
            sent_at[i] = time.perf_counter()
        except OSError:
            failed += 1
            replace(i)

    for i in range(len(clients)):
        issue(i)
    while sent_at:
        events = selector.select(ANSWER_TIMEOUT_S)
        if not events:
            failed += len(sent_at)
            for i in list(sent_at):
                replace(i)
            break
        for key, _ in events:
            i = key.data
            try:
                ok = clients[i].poll()
            except (OSError, ValueError, IndexError):
                ok = False  # a connection reset, or bytes that are not an answer
            if ok is None:
                continue
            if i in sent_at:
                started = sent_at.pop(i)
                if ok:
                    latencies.append(time.perf_counter() - started)
                failed += not ok
            if not ok or clients[i].closed:
                replace(i)
            issue(i)
    selector.close()
    return latencies, failed


def _client_worker(args) -> Dict[str, object]:
    """One client process: ``connections`` lean clients of ``kind`` ("http" or "grpc") to ``port``,
    WARMUP_REQUESTS untimed, then ``count`` requests bounded by ``seconds``; their latencies, failures,
    the timed part's start and end, and this process's CPU seconds over the whole call."""
    kind, port, target, body, connections, count, seconds = args
    cpu = time.process_time()
    client_class = _LeanHttpClient if kind == "http" else _LeanGrpcClient
    fresh = lambda: client_class(port, target, body)  # noqa: E731
    clients = [fresh() for _ in range(connections)]
    _drive(clients, fresh, WARMUP_REQUESTS, time.monotonic() + seconds)
    start = time.perf_counter()
    latencies, failed = _drive(clients, fresh, count, time.monotonic() + seconds)
    end = time.perf_counter()
    for client in clients:
        client.close()
    return {"latencies": latencies, "errors": failed, "start": start, "end": end,
            "cpu_s": time.process_time() - cpu}


# --- loads ---------------------------------------------------------------------------------------

def _clients(n: int) -> str:
    return f"{n} client{'s' * (n > 1)}"


@dataclass(frozen=True)
class Load:
    """One row of the table: ``clients`` connections to ``server``'s ``api``, ``batch`` rows a request."""
    server: str
    api: str
    batch: int
    clients: int


@dataclass(frozen=True)
class Target:
    """Where a load goes: the transport, port and path or method, the request's bytes, and the server's
    process (its CPU is measured)."""
    kind: str
    port: int
    path: str
    body: bytes
    pid: int


def _process_tree(pid: int) -> List[int]:
    """``pid`` and its descendants (a server's workers)."""
    pids, i = [pid], 0
    while i < len(pids):
        for task in Path(f"/proc/{pids[i]}/task").glob("*"):
            try:
                pids += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                pass
        i += 1
    return pids


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of ``pid``'s process tree so far."""
    total = 0
    for each in _process_tree(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    """Resident memory of ``pid``'s process tree."""
    total = 0
    for each in _process_tree(pid):
        try:
            with open(f"/proc/{each}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total / 1024


def _quantile_ms(latencies: List[float], q: float) -> Optional[float]:
    """The ``q`` quantile of sorted latencies in seconds, in milliseconds."""
    return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2) if latencies else None


def _load(pool, target: Target, clients: int, count: int, seconds: float) -> Dict[str, object]:
    """``count`` requests (at most ``seconds``) from ``clients`` connections spread over the client
    processes; req/s and latency of the answered ones, and the CPU cores the server and the load
    generator used over the whole call."""
    processes = min(clients, CLIENT_PROCESSES)
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    server_cpu, began = _cpu_s(target.pid), time.perf_counter()
    results = pool.map(_client_worker, [(target.kind, target.port, target.path, target.body, share,
                                         count // processes, seconds) for share in shares], chunksize=1)
    wall, server_cpu = time.perf_counter() - began, _cpu_s(target.pid) - server_cpu
    latencies = sorted(x for r in results for x in r["latencies"])
    timed = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {"requests": len(latencies), "errors": sum(r["errors"] for r in results),
            "req_per_s": round(len(latencies) / timed, 1), "p50_ms": _quantile_ms(latencies, 0.50),
            "p99_ms": _quantile_ms(latencies, 0.99),
            "server_cpu_cores": round(server_cpu / wall, 2),
            "client_cpu_cores": round(sum(r["cpu_s"] for r in results) / wall, 2)}


def _median_round(rounds: List[Dict[str, object]]) -> Dict[str, object]:
    """The median round by req/s, every round's req/s beside it, and the median of the rounds' p99s."""
    loads = sorted(rounds, key=lambda load: load["req_per_s"])
    p99s = sorted(load["p99_ms"] or 0 for load in loads)
    return {**loads[len(loads) // 2], "rounds_req_per_s": [load["req_per_s"] for load in loads],
            "median_p99_ms": p99s[len(p99s) // 2]}


def _alternated(pool, loads: Dict[Load, Target], count: int, seconds: float, rounds: int) -> Dict[Load, dict]:
    """Each round runs every load once, the order reversed every other round, so the host's drift
    falls on all servers alike; the median round of each."""
    done: Dict[Load, List[Dict[str, object]]] = {load: [] for load in loads}
    for round_number in range(rounds):
        for load in (list(loads) if round_number % 2 == 0 else list(reversed(loads))):
            done[load].append(_load(pool, loads[load], load.clients, count, seconds))
        print(f"serving bench: round {round_number + 1} of {rounds} done", file=sys.stderr, flush=True)
    return {load: _median_round(done[load]) for load in loads}


def _soak(pool, target: Target, clients: int, seconds: float) -> Dict[str, float]:
    """Full load for ``seconds``, in rounds of at most 30 s; the server's RSS after the first round
    and at the end (memory must stay flat), and every failed request."""
    first = _load(pool, target, clients, 1_000_000, min(30.0, seconds))
    start_mb, started = _rss_mb(target.pid), time.monotonic()
    requests, errors = first["requests"], first["errors"]
    while time.monotonic() - started < seconds:
        load = _load(pool, target, clients, 1_000_000, min(30.0, max(1.0, seconds - (time.monotonic() - started))))
        requests, errors = requests + load["requests"], errors + load["errors"]
    end_mb = _rss_mb(target.pid)
    return {"clients": clients, "seconds": round(time.monotonic() - started, 1), "requests": requests,
            "errors": errors, "rss_start_mb": round(start_mb, 1), "rss_end_mb": round(end_mb, 1),
            "rss_growth_pct": round(100 * (end_mb - start_mb) / start_mb, 2)}


# --- the floors: the model call alone, the transports alone ----------------------------------------

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


def _model_calls(model_dir: Path, columns: Dict[str, Tuple[Any, list]]) -> Dict[str, float]:
    """The serving signature called in a loop in this process, at each batch size: through a session
    callable in the caller's thread (the floor: no server does less per request), and as the tf.function
    `tf.saved_model.load` gives (what the KServe model calls)."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2

    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        signature = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(model_dir)).signature_def[
            "serving_default"]
    names = sorted(signature.inputs)
    options = config_pb2.CallableOptions(feed=[signature.inputs[n].name for n in names],
                                         fetch=[o.name for o in signature.outputs.values()])
    options.run_options.inter_op_thread_pool = -1  # the caller's thread
    session_call = session._make_callable_from_options(options)
    function = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    calls = {}
    for batch in BATCHES:
        arrays = {n: np.asarray(columns[n][1][:batch], columns[n][0]) for n in names}
        feeds = [arrays[n] for n in names]
        calls[f"session call alone, batch {batch} (the floor)"] = _per_call_us(lambda: session_call(*feeds))
        calls[f"signature as a tf.function (the KServe model's call), batch {batch}"] = _per_call_us(
            lambda: function(**arrays))
    session.close()
    return calls


def _echo_http(ready) -> None:
    """uvicorn with httptools, answering fixed bytes to any request: the REST transport's own cost."""
    import uvicorn

    answer = b'{"predictions":[[0.5]]}'

    async def app(scope, receive, send) -> None:
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]})
        await send({"type": "http.response.body", "body": answer})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)  # before the port is told: a client may connect before uvicorn runs
    ready.put(sock.getsockname()[1])
    uvicorn.Server(uvicorn.Config(app, http="httptools", lifespan="off", access_log=False,
                                  log_level="warning")).run(sockets=[sock])


def _echo_grpc(ready) -> None:
    """grpcio's server whose ModelInfer answers fixed bytes: the gRPC transport's own cost."""
    from concurrent import futures

    import grpc

    service, method = APIS["gRPC V2"][1].strip("/").split("/")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {
        method: grpc.unary_unary_rpc_method_handler(lambda request, context: b"")}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    ready.put(port)
    server.wait_for_termination()


def _transport_floor(pool, bodies: Dict[Tuple[str, int], bytes], count: int, seconds: float) -> Dict[str, dict]:
    """Servers answering fixed bytes to the same load generator (batch-1 requests): each transport's
    ceiling, before any model or codec."""
    context = multiprocessing.get_context("spawn")
    floors = {}
    for name, target, api in (("HTTP/1.1 echo (uvicorn + httptools)", _echo_http, "REST V1"),
                              ("gRPC echo (grpcio server)", _echo_grpc, "gRPC V2")):
        ready = context.Queue()
        process = context.Process(target=target, args=(ready,), daemon=True)
        process.start()
        try:
            port = ready.get(timeout=60)
            for clients in (1, 8):
                floors[f"{name}, {_clients(clients)}"] = _load(
                    pool, Target(APIS[api][0], port, APIS[api][1], bodies[api, 1], process.pid), clients, count,
                    seconds)
        finally:
            process.kill()
            process.join(10)
    return floors


# --- servers -----------------------------------------------------------------------------------

@dataclass
class Server:
    """A server under load: its process and ports by transport."""
    process: subprocess.Popen
    ports: Dict[str, int]

    def target(self, api: str, body: bytes) -> Target:
        kind, path = APIS[api]
        return Target(kind, self.ports[kind], path, body, self.process.pid)


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
            raise RuntimeError(f"{command[:4]} exited:\n" + "".join(output[-30:]))
        output.append(line)
        found = ready(line)
        if found:
            threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
            return process, found
    process.kill()
    raise RuntimeError(f"{command[:4]} did not start:\n" + "".join(output[-30:]))


def _stop(process) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


def _wait_ok(port: int, path: str, tries: int = 120) -> None:
    """Until GET ``path`` answers 200 (a server that loads its model after it listens)."""
    for _ in range(tries):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"127.0.0.1:{port}{path} never answered 200")


def _mlops_serve(serving_dir: Path, *options: str) -> Server:
    """`mlops serve` of this checkout on ports chosen here (workers sharing a port need a fixed one)."""
    rest_port, grpc_port = free_ports(2)
    command = [sys.executable, "-m", "cli.main", "serve", "--serving-dir", str(serving_dir),
               "--rest-port", str(rest_port), "--grpc-port", str(grpc_port), *options]
    process, match = _start(command, READY.search)
    return Server(process, {"http": int(match.group(1)), "grpc": int(match.group(2))})


def _has_workers_flag() -> bool:
    usage = subprocess.run([sys.executable, "-m", "cli.main", "serve", "--help"], capture_output=True, text=True,
                           timeout=300)
    return "--workers" in usage.stdout


def _kserve_serve(model_dir: Path) -> Server:
    """bench/kserve/model_server.py in .venv-kserve: KServe's ModelServer with its defaults but the
    per-request latency log line."""
    ports = dict(zip(("http", "grpc"), free_ports(2)))
    command = [str(KSERVE_PYTHON), str(KSERVE_SERVER), "--model_dir", str(model_dir), "--model_name", MODEL,
               "--http_port", str(ports["http"]), "--grpc_port", str(ports["grpc"]),
               "--enable_latency_logging", "false"]
    process, _ = _start(command, lambda line: "Uvicorn running" in line)
    _wait_ok(ports["http"], f"/v2/models/{MODEL}/ready")
    return Server(process, ports)


def _mlflow_serve(model_dir: Path, workdir: Path) -> Server:
    from serving.pyfunc import save_pyfunc

    pyfunc_dir = save_pyfunc(model_dir, workdir / "pyfunc")
    port = free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
           LEGACY_KERAS_ENV: "1"}
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(pyfunc_dir), "-p", str(port),
               "--host", "127.0.0.1", "--env-manager", "local"]
    process, _ = _start(command, lambda line: "Uvicorn running" in line or "Listening at" in line, env=env)
    _wait_ok(port, "/ping")  # the app answers /ping once the model is loaded
    return Server(process, {"http": port})


def _servers(stack: ExitStack, model_dir: Path, workdir: Path,
             serving_dir: Path) -> Tuple[Dict[str, Server], List[str]]:
    """Every server of PLAN that can run here, each stopped when ``stack`` closes; and a note for each
    that cannot."""
    starts: Dict[str, Callable[[], Server]] = {
        MLOPS: lambda: _mlops_serve(serving_dir), BATCHING: lambda: _mlops_serve(serving_dir, "--enable-batching"),
        KSERVE: lambda: _kserve_serve(model_dir), MLFLOW: lambda: _mlflow_serve(model_dir, workdir)}
    skipped = []
    if _has_workers_flag():
        starts[WORKERS] = lambda: _mlops_serve(serving_dir, "--workers", "2")
    else:
        skipped.append(f"{WORKERS}: this checkout's `mlops serve --help` has no --workers")
    if not KSERVE_PYTHON.exists():
        del starts[KSERVE]
        skipped.append(f"{KSERVE}: no {KSERVE_PYTHON.relative_to(ROOT)} (`make kserve-setup` makes it)")
    servers = {}
    for name in PLAN:
        if name in starts:
            servers[name] = starts[name]()
            stack.callback(_stop, servers[name].process)
    return servers, skipped


# --- the model and its requests -------------------------------------------------------------------

def _default_model(home: Optional[Path]) -> Path:
    recorded = RESULTS / "pipeline.json"
    if home is None and recorded.exists():
        home = Path(json.loads(recorded.read_text()).get("home", "/nonexistent"))
    if home is None or not any((home / "serving" / MODEL).glob("[0-9]*")):
        from cli.main import main as cli_main

        home = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
        cli_main(["run", "--home", str(home), "--no-tracking"])
    return max((home / "serving" / MODEL).glob("[0-9]*"), key=lambda p: int(p.name))


def _columns(model_dir: Path, data_csv: Path) -> Dict[str, Tuple[Any, list]]:
    """The serving signature's inputs, each with its numpy dtype and a column of the first max(BATCHES)
    rows of the job's data (values as the CSV has them, typed as the input is)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel.FromString((model_dir / "saved_model.pb").read_bytes())
    inputs = saved_model.meta_graphs[0].signature_def["serving_default"].inputs
    with data_csv.open() as f:
        rows = [row for _, row in zip(range(max(BATCHES)), csv.DictReader(f))]
    rows = (rows * max(BATCHES))[:max(BATCHES)]
    columns = {}
    for name, info in inputs.items():
        dtype = tf.as_dtype(info.dtype)
        cast = float if dtype.is_floating else int if dtype.is_integer else str
        columns[name] = (dtype.as_numpy_dtype, [cast(row[name]) for row in rows])
    return columns


def _bodies(columns: Dict[str, Tuple[Any, list]]) -> Dict[Tuple[str, int], bytes]:
    """Each API's request body for each batch size, encoded once, as that API's clients send it."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2
    from tritonclient.grpc import service_pb2
    from tritonclient.utils import np_to_triton_dtype

    bodies = {}
    for batch in BATCHES:
        arrays = {name: np.asarray(values[:batch], dtype) for name, (dtype, values) in columns.items()}
        bodies["REST V1", batch] = json.dumps(
            {"instances": [{name: values[i] for name, (_, values) in columns.items()} for i in range(batch)]}).encode()
        bodies["REST V2", batch] = json.dumps({"inputs": [
            {"name": name, "shape": [batch], "datatype": np_to_triton_dtype(array.dtype), "data": array.tolist()}
            for name, array in arrays.items()]}).encode()
        infer = service_pb2.ModelInferRequest(model_name=MODEL)  # as Triton's client sends it: raw contents
        for name, array in arrays.items():
            infer.inputs.add(name=name, datatype=np_to_triton_dtype(array.dtype), shape=[batch])
            infer.raw_input_contents.append(array.tobytes())
        bodies["gRPC V2", batch] = infer.SerializeToString()
        predict = predict_pb2.PredictRequest()
        predict.model_spec.name = MODEL
        for name, array in arrays.items():
            predict.inputs[name].CopyFrom(tf.make_tensor_proto(array))
        bodies["gRPC Predict", batch] = predict.SerializeToString()
        rows = [[values[i] for _, values in columns.values()] for i in range(batch)]
        bodies["REST /invocations", batch] = json.dumps(
            {"dataframe_split": {"columns": list(columns), "data": rows}}).encode()
    return bodies


# --- the comparisons the goals name ---------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    """One ratio of req/s: ``ours`` over ``theirs``, what else it needs to be read, and the goal."""
    name: str
    ratio: Optional[float]
    detail: str
    goal: str


def _compare(results: Dict[Load, dict], name: str, ours: Load, theirs: Load, goal: str,
             detail: Callable[[dict, dict], str]) -> Optional[Comparison]:
    if ours not in results or theirs not in results:
        return None
    a, b = results[ours], results[theirs]
    return Comparison(name, throughput_ratio(a, b), detail(a, b), goal)


def throughput_ratio(ours: dict, theirs: dict) -> Optional[float]:
    """req/s of one load over another's (None when the second answered nothing)."""
    return round(ours["req_per_s"] / theirs["req_per_s"], 2) if theirs["req_per_s"] else None


def _comparisons(results: Dict[Load, dict]) -> List[Comparison]:
    p99s = lambda a, b: f"{a['req_per_s']} vs {b['req_per_s']} req/s; p99 {a['p99_ms']} vs {b['p99_ms']} ms"  # noqa: E731
    cpu = lambda a, b: (f"{a['req_per_s']} vs {b['req_per_s']} req/s; server {a['server_cpu_cores']} vs "  # noqa: E731
                        f"{b['server_cpu_cores']} cores, load generator {a['client_cpu_cores']} vs "
                        f"{b['client_cpu_cores']} cores")
    found = []
    for api, goal in (("REST V1", ">= 2x, p99 <= KServe's"), ("REST V2", ">= 2x, p99 <= KServe's"),
                      ("gRPC V2", ">= 1.5x, p99 <= KServe's")):
        for batch in BATCHES:
            for clients in CLIENTS:
                found.append(_compare(results, f"{MLOPS} / KServe, {api}, batch {batch}, {_clients(clients)}",
                                      Load(MLOPS, api, batch, clients), Load(KSERVE, api, batch, clients), goal, p99s))
    for batch in BATCHES:
        found.append(_compare(results, f"{MLOPS} / {MLFLOW}, REST, batch {batch}, 1 client",
                              Load(MLOPS, "REST V1", batch, 1), Load(MLFLOW, "REST /invocations", batch, 1),
                              ">= 10x" if batch == 1 else "", p99s))
    for api in ("REST V1", "gRPC V2"):
        for batch in BATCHES:
            for clients in (8, 32):
                found.append(_compare(results, f"--workers 2 / 1 worker, {api}, batch {batch}, {clients} clients",
                                      Load(WORKERS, api, batch, clients), Load(MLOPS, api, batch, clients),
                                      ">= 1.3x" if batch == 1 else "", cpu))
        for clients in (8, 32):
            found.append(_compare(results, f"--enable-batching / without, {api}, batch 1, {clients} clients",
                                  Load(BATCHING, api, 1, clients), Load(MLOPS, api, 1, clients),
                                  ">= 1.5x" if clients == 32 else "", cpu))
    return [c for c in found if c is not None]


# --- report ----------------------------------------------------------------------------------------

def _report(results: Dict[Load, dict], comparisons: List[Comparison], soak: Optional[dict],
            extra: Dict[str, Any]) -> Dict[str, Any]:
    return {**extra, "loads": [{**vars(load), **result} for load, result in results.items()],
            "comparisons": [vars(c) for c in comparisons], "soak": soak,
            "machine": {"python": sys.version.split()[0], "cpus": os.cpu_count(), "platform": platform.platform()},
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _markdown(report: Dict[str, Any]) -> List[str]:
    settings, soak = report["settings"], report["soak"]
    lines = [f"# Serving side by side ({report['features']}-feature default model, loopback, "
             f"{report['machine']['cpus']} CPUs)", "",
             f"Each load: at most {settings['requests']} requests and {settings['load_seconds']} s; "
             f"{settings['rounds']} rounds, alternated, the median round shown (every round's req/s in brackets). "
             "CPU in cores used over the load (server process tree; the load generator's client processes).", "",
             "## The goals' ratios (req/s of the first over the second)", "",
             "| comparison | ratio | measured | goal |", "|---|---:|---|---|"]
    lines += [f"| {c['name']} | {c['ratio']}x | {c['detail']} | {c['goal']} |" for c in report["comparisons"]]
    if soak:
        lines += ["", f"Soak, {MLOPS} REST V1, batch 1, {soak['clients']} clients, {soak['seconds']} s: "
                      f"{soak['requests']} requests, {soak['errors']} errors; server RSS {soak['rss_start_mb']} -> "
                      f"{soak['rss_end_mb']} MB ({soak['rss_growth_pct']:+}%) (goal: +<2%, 0 errors)."]
    lines += ["", "## Every load", "",
              "| server | API | batch | clients | requests | errors | req/s | p50 ms | p99 ms | server CPU | "
              "load generator CPU |", "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in report["loads"]:
        rounds = f" ({', '.join(map(str, r['rounds_req_per_s']))})" if len(r["rounds_req_per_s"]) > 1 else ""
        lines.append(f"| {r['server']} | {r['api']} | {r['batch']} | {r['clients']} | {r['requests']} | "
                     f"{r['errors']} | {r['req_per_s']}{rounds} | {r['p50_ms']} | {r['p99_ms']} | "
                     f"{r['server_cpu_cores']} | {r['client_cpu_cores']} |")
    lines += ["", "## The floors", "", "The serving signature called in a loop in one process (us per call, best "
              "of 3 x 1000); the session call alone is what no server can go below:", "",
              "| call | us | calls/s on one core |", "|---|---:|---:|"]
    lines += [f"| {name} | {us} | {round(1e6 / us)} |" for name, us in report["model_calls_us"].items()]
    lines += ["", "The transports alone, servers answering fixed bytes to the same load generator (batch-1 requests):",
              "", "| load | req/s | p50 ms | p99 ms | server CPU | load generator CPU |",
              "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {name} | {r['req_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {r['server_cpu_cores']} | "
              f"{r['client_cpu_cores']} |" for name, r in report["transport_floor"].items()]
    lines += [""] + [f"Not measured: {note}." for note in report["skipped"]]
    lines += [f"Measured {report['measured_at']} in {report['bench_seconds']:.0f} s "
              f"(kserve {report['versions'].get('kserve')}, mlflow {report['versions'].get('mlflow')})."]
    return lines


# --- main --------------------------------------------------------------------------------------

def write_results(stem: str, report: Dict[str, Any], lines: List[str]) -> None:
    """bench/results/STEM.json (the report) and STEM.md (``lines``), the markdown printed too."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="a home with a pushed 'fraud' model (default: the pipeline bench's)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per load, at most")
    parser.add_argument("--load-seconds", type=float, default=5.0, help="seconds per load, at most")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every load (the median is reported)")
    parser.add_argument("--soak-seconds", type=float, default=600.0, help="the soak at 8 clients (0: none)")
    return parser.parse_args()


def _versions() -> Dict[str, Optional[str]]:
    from importlib import metadata

    kserve = None
    if KSERVE_PYTHON.exists():
        kserve = subprocess.run([str(KSERVE_PYTHON), "-c", "from importlib import metadata; "
                                 "print(metadata.version('kserve'))"], capture_output=True, text=True).stdout.strip()
    return {"kserve": kserve, "mlflow": metadata.version("mlflow")}


def _measure(pool, args, model_dir: Path, bodies, workdir: Path) -> Tuple[Dict[Load, dict], Optional[dict], List[str]]:
    """Every server up at once; every load of PLAN in alternated rounds; then the soak on `mlops serve`
    alone (the others stopped)."""
    serving_dir = workdir / "serving"
    shutil.copytree(model_dir, serving_dir / MODEL / model_dir.name)
    with ExitStack() as stack:
        servers, skipped = _servers(stack, model_dir, workdir, serving_dir)
        loads = {Load(server, api, batch, clients): servers[server].target(api, bodies[api, batch])
                 for server, plan in PLAN.items() if server in servers
                 for api, batches, clients_list in plan for batch in batches for clients in clients_list}
        results = _alternated(pool, loads, args.requests, args.load_seconds, args.rounds)
        for name, server in servers.items():
            if name != MLOPS:
                _stop(server.process)
        soak = None
        if args.soak_seconds > 0:
            soak = _soak(pool, servers[MLOPS].target("REST V1", bodies["REST V1", 1]), 8, args.soak_seconds)
    return results, soak, skipped


def main() -> int:
    args = _arguments()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    began = time.monotonic()
    model_dir = _default_model(args.home)
    columns = _columns(model_dir, model_dir.parents[2] / "data" / MODEL / f"{MODEL}.csv")
    bodies = _bodies(columns)
    model_calls = _model_calls(model_dir, columns)
    workdir = Path(tempfile.mkdtemp(prefix="mlops-serving-bench-"))
    pool = multiprocessing.get_context("spawn").Pool(CLIENT_PROCESSES)
    try:
        floors = _transport_floor(pool, bodies, args.requests, args.load_seconds)
        results, soak, skipped = _measure(pool, args, model_dir, bodies, workdir)
    finally:
        pool.close()
        shutil.rmtree(workdir, ignore_errors=True)
    report = _report(results, _comparisons(results), soak, {
        "model": str(model_dir), "features": len(columns), "settings": {
            "requests": args.requests, "load_seconds": args.load_seconds, "rounds": args.rounds,
            "soak_seconds": args.soak_seconds, "client_processes": CLIENT_PROCESSES},
        "model_calls_us": model_calls, "transport_floor": floors, "skipped": skipped, "versions": _versions(),
        "bench_seconds": round(time.monotonic() - began, 1)})
    write_results("serving", report, _markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
