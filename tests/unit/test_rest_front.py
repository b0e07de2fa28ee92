"""The REST port's transport (serving.api.http_server: uvicorn with httptools, guarded), without
models: raw bytes on a socket, as curl, proxies and abusive clients send them."""
import socket
from types import SimpleNamespace

import pytest

from serving.api.http_server import MAX_HEAD_BYTES, MAX_HEADERS, RestServer, listening_socket
from serving.options import ServerOptions


def _bare_server(**options) -> RestServer:
    """The REST server over no data plane: enough to parse requests and answer 400 for unknown paths."""
    server = RestServer(SimpleNamespace(options=ServerOptions(**options)), listening_socket("127.0.0.1", 0, False))
    server.start()
    return server


@pytest.fixture(scope="module")
def bare_rest_server():
    server = _bare_server()
    yield ("127.0.0.1", server.port)
    server.stop()


def _exchange(address, raw: bytes, silence: float = 0.5) -> bytes:
    """Sends ``raw`` and reads until the server closes the connection or is silent for ``silence`` s."""
    received = b""
    with socket.create_connection(address, timeout=5) as client:
        client.sendall(raw)
        client.settimeout(silence)
        try:
            while True:
                chunk = client.recv(65536)
                if not chunk:
                    return received + b"<closed>"
                received += chunk
        except (TimeoutError, socket.timeout):
            return received
        except ConnectionResetError:
            return received + b"<closed>"


def test_a_client_that_expects_100_continue_gets_it_at_once(bare_rest_server):
    with socket.create_connection(bare_rest_server, timeout=5) as client:
        client.sendall(b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        client.settimeout(2.0)
        assert client.recv(64).startswith(b"HTTP/1.1 100 Continue")


def test_requests_on_one_connection_are_parsed_with_any_header_case_and_kept_alive(bare_rest_server):
    one = b"POST /nope HTTP/1.1\r\nhost: x\r\ncontent-LENGTH: 2\r\n\r\n{}"
    answer = _exchange(bare_rest_server, one + one)
    assert answer.count(b"HTTP/1.1 400 Bad Request\r\n") == 2 and b"<closed>" not in answer
    assert answer.count(b'{"error":"Malformed request: POST /nope"}') == 2
    assert b"\r\ndate: " in answer.lower() and b"\r\ncontent-length: 41\r\n" in answer.lower()
    assert b"\r\nserver: mlops-serving\r\n" in answer.lower()


def test_a_chunked_body_is_read_as_one(bare_rest_server):
    answer = _exchange(bare_rest_server, b"POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                         b"1\r\n{\r\n1\r\n}\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ") and b"Malformed request: POST /nope" in answer


@pytest.mark.parametrize("raw, status, closed", [
    (b"POST /nope HTTP/1.0\r\nContent-Length: 0\r\n\r\n", b"400", True),  # HTTP/1.0: one request
    (b"POST /nope HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", b"400", True),
    (b"POST /nope HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", b"400", True),  # 1.0: closed
    (b"GET / HTTP/2.0\r\n\r\n", b"400", True),
    (b"GET / HTTP/one\r\n\r\n", b"400", True),
    (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", b"400", True),
    (b"GET / HTTP/1.1\r\n" + b"X-A: 1\r\n" * (MAX_HEADERS + 1) + b"\r\n", b"431", True),
    (b"GET / HTTP/1.1\r\nX-Long: " + b"a" * (MAX_HEAD_BYTES + 10) + b"\r\n\r\n", b"431", True),
    # a whole request in one read: its body is not head (400 for the unknown path, kept alive)
    (b"POST /nope HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (MAX_HEAD_BYTES + 99) + b"x" * (MAX_HEAD_BYTES + 99),
     b"400", False),
    (b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", b"400", True),  # llhttp knows the methods: not one
    (b"PUT /v1/models/m HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", b"501", True),
    # request smuggling shapes (a proxy and this server must not read two different requests)
    (b"POST /nope HTTP/1.1\r\nContent-Length: -1\r\n\r\n", b"400", True),
    (b"POST /nope HTTP/1.1\r\nContent-Length : 2\r\n\r\n{}", b"400", True),
    (b"POST /nope HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", b"400", True),
    (b"POST /nope HTTP/1.1\r\nContent-Length: +2\r\n\r\n{}", b"400", True),
    (b"POST /nope HTTP/1.1\r\nContent-Length: 1_0\r\n\r\n{}", b"400", True),
    (b"POST /nope HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"400", True),
])
def test_malformed_or_final_requests_get_http_answers_in_tf_servings_error_shape(bare_rest_server, raw, status,
                                                                                closed):
    answer = _exchange(bare_rest_server, raw)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:120]
    assert answer.endswith(b"<closed>") == closed, answer[-200:]
    assert b"\r\ncontent-type: application/json\r\n" in answer.lower() and b'{"error":"' in answer


def test_a_head_that_never_ends_is_closed_after_the_idle_time_and_a_full_server_says_503():
    server = _bare_server(idle_timeout_s=0.5, max_connections=2)
    try:
        address = ("127.0.0.1", server.port)
        slow = socket.create_connection(address, timeout=5)
        slow.sendall(b"GET /v2 HTTP/1.1\r\nX-Slow: ")  # slowloris: a head that never ends
        other = socket.create_connection(address, timeout=5)
        assert b" 503 " in _exchange(address, b"GET /v2 HTTP/1.1\r\n\r\n")[:20]
        slow.settimeout(10)
        assert slow.recv(100) == b""  # closed by the server after its 0.5 s
        other.settimeout(10)
        assert other.recv(100) == b""  # a connection that sends nothing: the same
    finally:
        server.stop()
