"""TF Serving's REST API (port 8501) on the standard library's threading HTTP server, and beside it
the Open Inference Protocol's (KServe V2) REST routes under ``/v2`` (``serving.api.open_inference``).

Paths, JSON formats, error bodies (``{"error": "..."}``) and status codes follow TF Serving. Nagle's
algorithm is off: with it, each small response waits on the client's delayed ACK.
"""
import json
import logging
import re
import ssl
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

from google.protobuf import json_format

from serving.api import open_inference
from serving.codec import tensors
from serving.dataplane import DataPlane, ModelSpec, status_list
from serving.errors import ServingError, invalid, not_found
from serving.options import TLS_HANDSHAKE_SECONDS
from serving.runtime.traffic import CLIENT_KEY_HEADER

log = logging.getLogger("mlops.serving")

MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<method>[A-Za-z]+))?$", re.IGNORECASE)
V2_MODEL_PATH = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<action>/ready|/infer)?$")
V2_PATHS = {"/v2": "server", "/v2/health/live": "live", "/v2/health/ready": "ready"}
METRICS_PATH = "/monitoring/prometheus/metrics"
HEALTH_PATH = "/healthz"

DRAIN_BYTES, DRAIN_SECONDS = 64 << 20, 2.0  # an oversized body read and dropped before closing
MAX_HEADER_LINE, MAX_HEADERS = 65536, 100  # the standard library's limits: beyond them, 431
_EMPTY_LINES = (b"\r\n", b"\n", b"")


class RequestHeaders:
    """A request's header fields by lower-cased name (a repeated field keeps its last value), read
    here rather than by the email package as http.server does: that parser was a sixth of a
    request's time."""
    __slots__ = ("_fields",)

    def __init__(self, fields: Dict[str, str]):
        self._fields = fields

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return self._fields.get(name.lower(), default)

    __getitem__ = get

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._fields


_date_cache: Tuple[int, str] = (0, "")


def http_date() -> str:
    """The Date header's value, formatted once a second rather than once a response."""
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, BaseHTTPRequestHandler.date_time_string(None, second))  # type: ignore[arg-type]
    return _date_cache[1]


# What a client sends call after call, worked out once: request targets (their path and match of
# TF Serving's model path), request lines and header lines (a varying Content-Length is one line per
# length), by their text. Each table holds at most MAX_REMEMBERED keys of at most MAX_REMEMBERED_BYTES
# and starts again when full, so odd clients cannot grow it.
_routes: Dict[str, Tuple[Optional[re.Match], str]] = {}
_request_lines: Dict[bytes, Tuple[str, str, str, Tuple[int, int], str]] = {}
_field_lines: Dict[bytes, Tuple[str, str]] = {}
MAX_REMEMBERED, MAX_REMEMBERED_BYTES = 1024, 512


def _remember(table: Dict[Any, Any], key: Any, value: Any) -> None:
    if len(key) <= MAX_REMEMBERED_BYTES:
        if len(table) >= MAX_REMEMBERED:
            table.clear()
        table[key] = value


def _target_route(target: str) -> Tuple[Optional[re.Match], str]:
    """A request target's path and its match of TF Serving's model path (the split and the regular
    expression are the same for every request to a path; a match object is immutable)."""
    found = _routes.get(target)
    if found is None:
        path = urlsplit(target).path
        found = MODEL_PATH.match(path), path
        _remember(_routes, target, found)
    return found


def _spec(match: "re.Match", signature_name: str = "") -> ModelSpec:
    version = match.group("version")
    if version is not None and not version.isdigit():
        raise invalid(f"Failed to convert version: {version} to numeric.")
    return ModelSpec(unquote(match.group("name")), int(version) if version else None,
                     unquote(match.group("label")) if match.group("label") else None, signature_name)


def _signature_name(document: Dict[str, Any]) -> str:
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid(f"JSON Value: {json.dumps(name)} not formatted correctly. 'signature_name' key must be a "
                      "string value.")
    return name


class RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = 1 << 16  # an answer's head and body leave in one write, not two (two segments, two wakeups)
    server_version = "mlops-serving"
    core: DataPlane  # set on the subclass made by make_rest_server

    def setup(self) -> None:
        """HTTPS: the TLS handshake, in this connection's thread and bounded in time."""
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(TLS_HANDSHAKE_SECONDS)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def parse_request(self) -> bool:
        """The request line and header fields, with http.server's checks and answers (400, 431, 505,
        keep-alive by version and Connection, Expect: 100-continue) but not its parser."""
        self.command, self.request_version, self.close_connection = None, self.default_request_version, True
        request = _request_lines.get(self.raw_requestline)
        if request is None:
            request = self._request_line()
            if request is None:
                return False
            _remember(_request_lines, self.raw_requestline, request)
        self.requestline, self.command, self.request_version, major_minor, self.path = request
        lines = self._head_lines()
        if lines is None:
            return False
        fields: Dict[str, str] = {}
        name = ""
        for line in lines:
            field = _field_lines.get(line)
            if field is not None:
                name, fields[field[0]] = field
                continue
            text = line.decode("iso-8859-1")
            if text[0] in " \t" and name:  # an obsolete folded continuation of the field before
                fields[name] += " " + text.strip()
                continue
            name, colon, value = text.partition(":")
            if not colon:
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad header line ({text.strip()[:80]!r})")
                return False
            name = name.strip().lower()
            fields[name] = value.strip()
            if text[0] not in " \t":
                _remember(_field_lines, line, (name, fields[name]))
        self.headers = RequestHeaders(fields)  # type: ignore[assignment]
        connection = fields.get("connection", "").lower()
        self.close_connection = connection == "close" or (major_minor < (1, 1) and connection != "keep-alive")
        if fields.get("expect", "").lower() == "100-continue" and major_minor >= (1, 1):
            return self.handle_expect_100()
        return True

    def _request_line(self) -> Optional[Tuple[str, str, str, Tuple[int, int], str]]:
        """The request line's (text, method, version, (major, minor), path); None: refused, answered."""
        line = self.raw_requestline.decode("iso-8859-1").rstrip("\r\n")
        self.requestline = line
        words = line.split()
        if not words:
            return None
        if len(words) != 3:
            self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request syntax ({line!r})")
            return None
        command, path, version = words
        number = version[5:].split(".") if version.startswith("HTTP/") else []
        if len(number) != 2 or not (number[0].isdigit() and number[1].isdigit()):
            self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request version ({version!r})")
            return None
        major_minor = (int(number[0]), int(number[1]))
        if major_minor >= (2, 0):
            self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"Invalid HTTP version ({version[5:]})")
            return None
        path = "/" + path.lstrip("/") if path.startswith("//") else path  # no scheme-less absolute URI
        return line, command, version, major_minor, path

    def _head_lines(self) -> Optional[List[bytes]]:
        """The header lines, up to the blank line (None: refused, answered). A head the buffer already
        holds whole, with CRLF line ends (the usual case), is split at once rather than read a line
        at a time (six readline calls of each request); anything else is read line by line."""
        buffered = self.rfile.peek()
        if buffered.startswith(b"\r\n"):
            self.rfile.read(2)
            return []
        end = buffered.find(b"\r\n\r\n")
        if end > 0 and buffered.count(b"\n", 0, end) == buffered.count(b"\r\n", 0, end):
            lines = self.rfile.read(end + 4)[:end].split(b"\r\n")
            if len(lines) <= MAX_HEADERS:
                return lines
        else:
            lines = []
            for _ in range(MAX_HEADERS + 1):
                line = self.rfile.readline(MAX_HEADER_LINE + 1)
                if len(line) > MAX_HEADER_LINE:
                    self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long")
                    return None
                if line in _EMPTY_LINES:
                    return lines
                lines.append(line)
        self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers")
        return None

    def handle_expect_100(self) -> bool:
        answered = super().handle_expect_100()
        self.wfile.flush()  # "100 Continue" must leave now (wbufsize): the client waits for it to send the body
        return answered

    def log_message(self, format: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              close: bool = False, fields: str = "") -> None:
        """The whole answer in one write: its head built as one string (``fields``: more header lines)."""
        self.close_connection = self.close_connection or close
        if log.isEnabledFor(logging.DEBUG):
            self.log_request(status, len(body))
        if close:
            fields += "Connection: close\r\n"
        reason = self.responses.get(status, ("",))[0]
        head = (f"{self.protocol_version} {status} {reason}\r\nServer: {self.version_string()}\r\n"
                f"Date: {http_date()}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                f"{fields}\r\n")
        self.wfile.write(head.encode("iso-8859-1") + body)
        self.wfile.flush()

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """http.server's own refusals (request line, header fields, unknown method) with a status line
        and TF Serving's JSON error body, and the connection closed, whatever the request's version."""
        status = int(code)
        self._send(status, tensors.dumps({"error": message or self.responses.get(status, ("",))[0]}), close=True)

    def _send_json(self, status: int, document: Any) -> None:
        self._send(status, tensors.dumps(document))

    def _send_error(self, error: ServingError, close: bool = False) -> None:
        self._send(error.http_status, tensors.dumps({"error": error.message}), close=close)

    def do_GET(self) -> None:
        match, path = _target_route(self.path)
        if path.startswith("/v2"):
            return self._v2_get(path)
        try:
            if path == METRICS_PATH:
                self._send(200, self.core.render_metrics().encode(), "text/plain; version=0.0.4")
                return
            if path == HEALTH_PATH:
                ready, body = self.core.health()
                self._send_json(200 if ready else 503, body)
                return
            if match is None or match.group("method"):
                raise invalid(f"Malformed request: GET {path}")
            spec = _spec(match)
            if match.group("metadata"):
                model, signature_defs = self.core.metadata(spec)
                metadata = {"signature_def": {"signature_def": {
                    key: json_format.MessageToDict(sig, preserving_proto_field_name=True)
                    for key, sig in signature_defs.items()}}}
                if model.servable.columns.keys:  # ours, beside TF Serving's: original names and keys
                    metadata["columns"] = model.servable.columns.as_json()
                if model.servable.image is not None:  # ours too: what the image model resizes to, its classes
                    metadata["image"] = model.servable.image.as_json()
                self._send_json(200, {
                    "model_spec": {"name": model.name, "signature_name": "", "version": str(model.version)},
                    "metadata": metadata,
                })
                return
            statuses = self.core.manager.status(spec.name, spec.version, spec.label)
            self._send_json(200, {"model_version_status": status_list(statuses)})
        except ServingError as e:
            self._send_error(e)

    def _read_body(self) -> Optional[bytes]:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._send(411, tensors.dumps({"error": "Content-Length is required"}), close=True)
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._send_error(invalid("Content-Length is not a number"), close=True)
            return None
        limit = self.core.options.max_request_bytes
        if length > limit:
            self._send(413, tensors.dumps({"error": f"Request body of {length} bytes exceeds the limit of {limit} "
                                                    "bytes"}), close=True)
            self._discard(length)
            return None
        return self.rfile.read(length)

    def _discard(self, length: int) -> None:
        """Reads (and drops) what the client is still sending, up to DRAIN_BYTES for DRAIN_SECONDS:
        a client blocked mid-upload then reads the answer instead of a connection reset."""
        self.connection.settimeout(DRAIN_SECONDS)
        remaining = min(length, DRAIN_BYTES)
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 16))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:  # the client gave up, or the time is over: the connection closes anyway
            pass

    # --- the Open Inference Protocol (KServe V2), serving.api.open_inference -------------------------
    def _v2_get(self, path: str) -> None:
        try:
            what = V2_PATHS.get(path.rstrip("/"))
            if what == "server":
                self._send_json(200, open_inference.server_metadata())
            elif what == "live":
                self._send_json(200, {"live": True})
            elif what == "ready":
                ready = self.core.manager.ready()
                self._send_json(200 if ready else 503, {"ready": ready})
            else:
                match = V2_MODEL_PATH.match(path)
                if match is None or match.group("action") == "/infer":
                    raise not_found(f"Malformed request: GET {path}")
                spec = open_inference.model_spec(unquote(match.group("name")), unquote(match.group("version") or ""))
                if match.group("action") == "/ready":
                    ready = open_inference.is_ready(self.core, spec)
                    self._send_json(200 if ready else 400, {"name": spec.name, "ready": ready})
                else:
                    self._send_json(200, open_inference.describe(self.core, spec))
        except ServingError as e:
            self._send_error(e)

    def _v2_infer(self, path: str, body: bytes) -> None:
        match = V2_MODEL_PATH.match(path)
        if match is None or match.group("action") != "/infer":
            raise not_found(f"Malformed request: POST {path}")
        header, binary = open_inference.split_body(body, self.headers.get(open_inference.HEADER_LENGTH))
        document = tensors.parse_json(header)
        inputs = open_inference.request_inputs(document, binary)
        wanted = open_inference.requested_outputs(document)
        spec = open_inference.model_spec(unquote(match.group("name")), unquote(match.group("version") or ""),
                                         document.get("parameters"))
        model, _, outputs = self.core.predict(
            spec, lambda signature, columns: open_inference.check_inputs(columns.rename(inputs), signature),
            list(wanted), entrypoint="V2_REST", client_key=self.headers.get(CLIENT_KEY_HEADER))
        default_binary = bool((document.get("parameters") or {}).get("binary_data_output", False))
        response, tail = open_inference.response_document(model.name, model.version, outputs, wanted,
                                                          default_binary, document.get("id"))
        payload = tensors.dumps(response)
        if not tail:
            self._send(200, payload)
            return
        self._send(200, payload + tail, "application/octet-stream",
                   fields=f"{open_inference.HEADER_LENGTH}: {len(payload)}\r\n")

    def do_POST(self) -> None:
        body = self._read_body()
        if body is None:
            return
        match, path = _target_route(self.path)
        if path.startswith("/v2/"):
            try:
                self._v2_infer(path, body)
            except ServingError as e:
                self._send_error(e)
            except Exception as e:  # a bug must not take the connection thread down silently
                log.exception("internal error on %s", path)
                self._send_error(ServingError("INTERNAL", f"{type(e).__name__}: {e}"))
            return
        try:
            method = (match.group("method") or "").lower() if match else ""
            if match is None or method not in ("predict", "classify", "regress"):
                raise invalid(f"Malformed request: POST {path}")
            document = tensors.parse_json(body)
            spec = _spec(match, _signature_name(document))
            if method == "predict":
                row_format = "instances" in document
                _, _, outputs = self.core.predict(
                    spec, lambda signature, columns: tensors.request_inputs(columns.rename_document(document),
                                                                             signature)[0],
                    client_key=self.headers.get(CLIENT_KEY_HEADER))
                self._send_json(200, tensors.response_json(outputs, row_format))
            elif method == "classify":
                _, _, results = self.core.classify(spec, tensors.json_examples(document),
                                                   client_key=self.headers.get(CLIENT_KEY_HEADER))
                self._send_json(200, {"results": [[[label, score] for label, score in row] for row in results]})
            else:
                _, _, values = self.core.regress(spec, tensors.json_examples(document),
                                                 client_key=self.headers.get(CLIENT_KEY_HEADER))
                self._send_json(200, {"results": values})
        except ServingError as e:
            self._send_error(e)
        except Exception as e:  # a bug must not take the connection thread down silently
            log.exception("internal error on %s", path)
            self._send_error(ServingError("INTERNAL", f"{type(e).__name__}: {e}"))


class RestServer(ThreadingHTTPServer):
    """One thread per connection, at most ``max_connections`` of them: beyond, a new connection gets
    a 503 and is closed at once (a TLS one is closed: no answer can be sent before its handshake)."""
    daemon_threads = True
    request_queue_size = 128
    max_connections = 1024

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._open = 0
        self._open_lock = threading.Lock()

    @property
    def open_connections(self) -> int:
        return self._open

    def process_request(self, request, client_address) -> None:
        with self._open_lock:
            full = self._open >= self.max_connections
            if not full:
                self._open += 1
        if full:
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:  # the thread could not start: give the slot back
            self._release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._open_lock:
            self._open -= 1

    def _refuse(self, request) -> None:
        body = tensors.dumps({"error": f"Too many connections (the limit is {self.max_connections}); retry later"})
        try:
            if not isinstance(request, ssl.SSLSocket):
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Retry-After: 1\r\nConnection: close\r\nContent-Length: "
                                + str(len(body)).encode() + b"\r\n\r\n" + body)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        """A failed TLS handshake (a plain-HTTP client, no client certificate) or a dropped connection
        is the client's problem: one debug line, not a traceback on the server's stderr."""
        error = sys.exc_info()[1]
        if isinstance(error, (ssl.SSLError, ConnectionError, TimeoutError)):
            log.debug("connection from %s dropped: %s", client_address, error)
            return
        super().handle_error(request, client_address)


def make_rest_server(core: DataPlane, host: str, port: int) -> RestServer:
    """Plain HTTP, or HTTPS with ``core.options.tls``: the handshake runs in the connection's own
    thread (not on accept), so a client that never finishes it holds no one else up."""
    handler = type("BoundRestHandler", (RestHandler,), {"core": core, "timeout": core.options.idle_timeout_s})
    server = RestServer((host, port), handler)
    server.max_connections = core.options.max_connections
    if core.options.tls is not None:
        server.socket = core.options.tls.server_context().wrap_socket(server.socket, server_side=True,
                                                                      do_handshake_on_connect=False)
    return server


def serve_in_thread(server: RestServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="rest", daemon=True)
    thread.start()
    return thread
