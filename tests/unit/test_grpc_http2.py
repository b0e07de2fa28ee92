"""The gRPC server's HTTP/2 layer (serving.grpc_http2), driven by grpcio's own client on loopback: unary
calls, status codes and messages, metadata, deadlines, compression, flow control for answers larger than
the client's window, many calls at once on one channel, the limits, and a stop that refuses new calls."""
import gzip
import socket
import threading
import time
from typing import Optional

import grpc
import hpack
import pytest

from serving.grpc_http2 import HeaderDecoder, Http2GrpcServer, literal, parse_timeout, percent_encode

SERVICE = "test.Echo"


def _handlers(calls: list, in_flight: Optional[dict] = None):
    in_flight = {"now": 0, "most": 0} if in_flight is None else in_flight
    counting = threading.Lock()

    def echo(request: bytes, context) -> bytes:
        calls.append(dict(context.invocation_metadata()))
        if request.startswith(b"abort:"):
            context.abort(grpc.StatusCode.NOT_FOUND, request[6:].decode())
        if request.startswith(b"sleep:"):
            time.sleep(float(request[6:]))
        if request.startswith(b"overlap:"):  # counts the calls running here at once
            with counting:
                in_flight["now"] += 1
                in_flight["most"] = max(in_flight["most"], in_flight["now"])
            time.sleep(float(request[8:]))
            with counting:
                in_flight["now"] -= 1
        if request.startswith(b"big:"):
            return b"x" * int(request[4:])
        if request == b"crash":
            raise ValueError("boom")
        return b"echo:" + request

    def stream(requests, context):
        yield b""

    return grpc.method_handlers_generic_handler(SERVICE, {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Stream": grpc.stream_stream_rpc_method_handler(stream),
    })


@pytest.fixture(scope="module")
def served():
    calls: list = []
    server = Http2GrpcServer("127.0.0.1", 0, max_concurrent_rpcs=64, max_receive=1024 * 1024, idle_timeout=5)
    server.add_generic_rpc_handlers((_handlers(calls),))
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.bound_port}")
    yield server, channel, calls
    channel.close()
    server.stop(1).wait(5)


def _echo(channel, **kwargs):
    return channel.unary_unary(f"/{SERVICE}/Echo", **kwargs)


def _side_by_side(call, count: int, timeout: float = 60) -> list:
    """`count` threads each make `call()` once, all at once; their results in the order they finished."""
    results = []
    threads = [threading.Thread(target=lambda: results.append(call())) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return results


def test_unary_calls_metadata_and_errors(served):
    _, channel, calls = served
    echo = _echo(channel)
    assert echo(b"hello", metadata=(("x-client", "a"), ("trace-bin", b"\x00\xff"))) == b"echo:hello"
    assert calls[-1]["x-client"] == "a" and calls[-1]["trace-bin"] == b"\x00\xff"
    assert "content-type" not in calls[-1]
    for request, code, message in ((b"abort:no such model \xc3\xa9 100%", grpc.StatusCode.NOT_FOUND,
                                    "no such model \u00e9 100%"),
                                   (b"crash", grpc.StatusCode.UNKNOWN, "Exception calling application: boom")):
        with pytest.raises(grpc.RpcError) as e:
            echo(request)
        assert (e.value.code(), e.value.details()) == (code, message)
    for path, code in ((f"/{SERVICE}/Nope", grpc.StatusCode.UNIMPLEMENTED),
                       ("/other.Service/Echo", grpc.StatusCode.UNIMPLEMENTED)):
        with pytest.raises(grpc.RpcError) as e:
            channel.unary_unary(path)(b"x")
        assert e.value.code() == code
    with pytest.raises(grpc.RpcError) as e:
        list(channel.stream_stream(f"/{SERVICE}/Stream")(iter([b"a"])))
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED and "unary calls only" in e.value.details()


def test_deadline_compression_and_size_limits(served):
    _, channel, _ = served
    echo = _echo(channel)
    with pytest.raises(grpc.RpcError) as e:
        echo(b"sleep:1.0", timeout=0.2)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert echo(b"z" * 50_000, compression=grpc.Compression.Gzip) == b"echo:" + b"z" * 50_000
    with pytest.raises(grpc.RpcError) as e:
        echo(b"y" * (1024 * 1024 + 1))
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in e.value.details()
    assert echo(b"after") == b"echo:after"  # the connection survived the refused call


def test_answers_larger_than_the_clients_window_and_frame(served):
    """3 MB answers: many DATA frames, sent as the client's WINDOW_UPDATEs arrive (a fresh channel starts
    at 64 KiB per stream), from the connection's own thread and from the pool at once."""
    server, _, _ = served
    with grpc.insecure_channel(f"127.0.0.1:{server.bound_port}",
                               options=[("grpc.max_receive_message_length", 8 * 1024 * 1024),
                                        ("grpc.http2.bdp_probe", 0)]) as channel:
        echo = _echo(channel)
        assert len(echo(b"big:3000000")) == 3_000_000
        assert _side_by_side(lambda: len(echo(b"big:1000000")), 4) == [1_000_000] * 4


def test_many_calls_at_once_on_one_channel_run_side_by_side():
    """16 calls at once on one channel, each holding its handler 0.2 s: the server counts how many
    run at the same moment, and more than one must (the pool; a server that ran one call at a time
    would count 1). The sleep only makes the overlap possible; no clock is asserted."""
    in_flight: dict = {"now": 0, "most": 0}
    server = Http2GrpcServer("127.0.0.1", 0, max_concurrent_rpcs=64, max_receive=1024 * 1024, idle_timeout=5)
    server.add_generic_rpc_handlers((_handlers([], in_flight),))
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.bound_port}") as channel:
            echo = _echo(channel)
            echo(b"warm")
            assert _side_by_side(lambda: echo(b"overlap:0.2", timeout=30), 16, timeout=60) == [b"echo:overlap:0.2"] * 16
    finally:
        server.stop(1).wait(5)
    assert in_flight["most"] >= 2, in_flight


def test_concurrent_call_limit_is_resource_exhausted():
    """The limit is the server's: one connection is told it (SETTINGS_MAX_CONCURRENT_STREAMS, so its client
    queues), calls beyond it from other connections are RESOURCE_EXHAUSTED."""
    server = Http2GrpcServer("127.0.0.1", 0, max_concurrent_rpcs=2)
    server.add_generic_rpc_handlers((_handlers([]),))
    server.start()
    own_connection = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.insecure_channel(f"127.0.0.1:{server.bound_port}", options=own_connection) for _ in range(3)]
    try:
        codes = []

        def call(channel):
            try:
                _echo(channel)(b"sleep:0.5")
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.append(e.code())
        threads = [threading.Thread(target=call, args=(channel,)) for channel in channels for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert codes.count(grpc.StatusCode.OK) >= 2 and grpc.StatusCode.RESOURCE_EXHAUSTED in codes, codes
        assert _echo(channels[0])(b"again") == b"echo:again"
    finally:
        for channel in channels:
            channel.close()
        server.stop(0)


def test_silent_and_half_sent_connections_are_closed_and_stop_refuses_new_calls():
    server = Http2GrpcServer("127.0.0.1", 0, idle_timeout=0.5)
    server.add_generic_rpc_handlers((_handlers([]),))
    server.start()
    silent = socket.create_connection(("127.0.0.1", server.bound_port))
    half = socket.create_connection(("127.0.0.1", server.bound_port))
    half.sendall(b"PRI * HTTP/2.0\r\n")
    for sock in (silent, half):
        sock.settimeout(5)
        received = b""
        while chunk := sock.recv(65536):  # the server's SETTINGS, then GOAWAY, then the close
            received += chunk
        assert received[3] == 4 and b"\x07\x00" in received  # SETTINGS first; a GOAWAY frame follows
        sock.close()
    with grpc.insecure_channel(f"127.0.0.1:{server.bound_port}") as channel:
        assert _echo(channel)(b"a") == b"echo:a"
        server.stop(0.5).wait(5)
        with pytest.raises(grpc.RpcError) as e:
            _echo(channel)(b"b", timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_header_decoding_reuses_blocks_only_while_the_table_is_unchanged():
    encoder, decoder = hpack.Encoder(), HeaderDecoder()
    headers = [(":path", "/a/B"), ("x-key", "one")]
    assert decoder.decode(encoder.encode(headers)) == headers  # indexes x-key into the dynamic table
    again = encoder.encode(headers)  # refers to the table
    assert decoder.decode(again) == headers and decoder.decode(again) == headers

    def indexed(name: bytes, value: bytes) -> bytes:  # literal with incremental indexing, new name
        return b"\x40" + bytes([len(name)]) + name + bytes([len(value)]) + value
    newest = b"\xbe"  # index 62: the dynamic table's newest entry
    decoder = HeaderDecoder()
    assert decoder.decode(indexed(b"x-key", b"one")) == [("x-key", "one")]
    assert decoder.decode(newest) == decoder.decode(newest) == [("x-key", "one")]
    decoder.decode(indexed(b"x-key", b"two"))
    assert decoder.decode(newest) == [("x-key", "two")]  # the same bytes now mean another entry
    plain = b"\x83" + literal(b"x-key", b"v")  # :method POST, then a literal: no table change, cached
    assert decoder.decode(plain) == decoder.decode(plain) == [(":method", "POST"), ("x-key", "v")]
    assert hpack.Decoder().decode(literal(b"x-long", b"v" * 300)) == [("x-long", "v" * 300)]


def _raw_calls(port: int, calls) -> list:
    """Calls on one raw h2c connection, each (extra header fields, gRPC message frame): the trailers of each."""
    from serving.grpc_http2 import DATA, END_HEADERS, END_STREAM, HEADERS, PREFACE, SETTINGS, frame

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        block = b"\x83\x86" + literal(b":path", f"/{SERVICE}/Echo".encode()) + literal(b":authority", b"x") \
            + literal(b"content-type", b"application/grpc") + literal(b"te", b"trailers")
        answers, buffer, decoder = [], b"", hpack.Decoder()
        for number, (extra, body) in enumerate(calls):
            stream = 2 * number + 1
            sock.sendall(frame(HEADERS, END_HEADERS, stream, block + extra) + frame(DATA, END_STREAM, stream, body))
            while True:
                while len(buffer) < 9 or len(buffer) < 9 + int.from_bytes(buffer[:3], "big"):
                    buffer += sock.recv(65536)
                length = int.from_bytes(buffer[:3], "big")
                kind, flags, payload, buffer = buffer[3], buffer[4], buffer[9:9 + length], buffer[9 + length:]
                if kind == HEADERS:
                    headers = dict(decoder.decode(payload))
                    if flags & END_STREAM:
                        answers.append(headers)
                        break
    return answers


def test_the_same_header_block_is_planned_once_and_compressed_messages_need_their_encoding(served):
    """Identical blocks reuse one plan (path, metadata, handler); a compressed message without
    grpc-encoding is INTERNAL, one of an encoding we do not read UNIMPLEMENTED with the ones we do."""
    server, _, calls = served
    message = b"\x00\x00\x00\x00\x02hi"
    gzipped = gzip.compress(b"hi")
    answers = _raw_calls(server.bound_port, [
        (b"", message), (b"", message), (literal(b"x-client", b"raw"), message),
        (b"", b"\x01" + len(gzipped).to_bytes(4, "big") + gzipped),
        (literal(b"grpc-encoding", b"gzip"), b"\x01" + len(gzipped).to_bytes(4, "big") + gzipped),
        (literal(b"grpc-encoding", b"br"), b"\x01\x00\x00\x00\x02hi"),
        (literal(b"grpc-encoding", b"br"), message)])  # declared but not used: read as it is
    statuses = [answer["grpc-status"] for answer in answers]
    assert statuses == ["0", "0", "0", "13", "0", "12", "0"], answers
    assert calls[-5:] == [{}, {}, {"x-client": "raw"}, {}, {}]  # the echo ran for the five answered 0
    assert "identity" in answers[5]["grpc-accept-encoding"] and "gzip" in answers[5]["grpc-accept-encoding"]


ECHO_BLOCK = b"\x83\x86" + literal(b":path", f"/{SERVICE}/Echo".encode()) + literal(b":authority", b"x") \
    + literal(b"content-type", b"application/grpc") + literal(b"te", b"trailers")


def _raw_call(stream: int, text: bytes, padded: bool = False) -> bytes:
    """An Echo call's HEADERS and DATA frames, as a client writes them at once."""
    from serving.grpc_http2 import DATA, END_HEADERS, END_STREAM, HEADERS, PADDED, frame

    body = b"\x00" + len(text).to_bytes(4, "big") + text
    data = frame(DATA, END_STREAM | PADDED, stream, b"\x03" + body + b"\x00" * 3) if padded \
        else frame(DATA, END_STREAM, stream, body)
    return frame(HEADERS, END_HEADERS, stream, ECHO_BLOCK) + data


def _raw_answers(server: Http2GrpcServer, writes: list, count: int) -> dict:
    """Sends each of ``writes`` as its own read (after the preface) on a new connection; reads until
    ``count`` calls ended: {stream: (grpc-status, message text)}."""
    from serving.grpc_http2 import DATA, HEADERS, PREFACE, SETTINGS, frame

    with socket.create_connection(("127.0.0.1", server.bound_port), timeout=10) as sock:
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        received, decoder, answers, ended = b"", hpack.Decoder(), {}, set()
        for piece in writes:
            sock.sendall(piece)
            time.sleep(0.05)  # each write its own read
        while len(ended) < count:
            while len(received) < 9 or len(received) < 9 + int.from_bytes(received[:3], "big"):
                received += sock.recv(65536)
            length = int.from_bytes(received[:3], "big")
            kind, flags, stream = received[3], received[4], int.from_bytes(received[5:9], "big")
            payload, received = received[9:9 + length], received[9 + length:]
            if not stream:  # SETTINGS and its ACK
                continue
            status, text = answers.get(stream, ("0", b""))
            if kind == DATA:
                text += payload[5:]
            elif kind == HEADERS:
                status = dict(decoder.decode(payload)).get("grpc-status", status)
                if flags & 1:  # END_STREAM
                    ended.add(stream)
            answers[stream] = (status, text)
    return answers


def test_a_lone_call_read_at_once_answers_as_one_read_frame_by_frame(served):
    """A call whose HEADERS and DATA arrive in one read takes the short path; the same call sent in
    pieces, with a padded DATA frame, or two calls in one write take the frame-by-frame path: all
    answer the same. A lone call on a stream id already used opens nothing (no answer)."""
    server, _, _ = served
    writes = [_raw_call(1, b"lone"), _raw_call(1, b"again"), _raw_call(3, b"pieces")[:20],
              _raw_call(3, b"pieces")[20:], _raw_call(5, b"padded", padded=True),
              _raw_call(7, b"one") + _raw_call(9, b"two")]
    assert _raw_answers(server, writes, 5) == {1: ("0", b"echo:lone"), 3: ("0", b"echo:pieces"),
                                               5: ("0", b"echo:padded"), 7: ("0", b"echo:one"),
                                               9: ("0", b"echo:two")}


def test_a_lone_call_larger_than_the_limit_is_refused_and_the_connection_goes_on():
    server = Http2GrpcServer("127.0.0.1", 0, max_receive=64)
    server.add_generic_rpc_handlers((_handlers([]),))
    server.start()
    try:
        answers = _raw_answers(server, [_raw_call(1, b"x" * 100), _raw_call(3, b"small")], 2)
    finally:
        server.stop(0.5).wait(5)
    assert answers == {1: (str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]), b""), 3: ("0", b"echo:small")}


def test_timeouts_and_message_encoding():
    assert parse_timeout("100m") == pytest.approx(0.1) and parse_timeout("2S") == 2 and parse_timeout("1H") == 3600
    for bad in ("", "5", "m", "1.5S", "10x"):
        with pytest.raises(ValueError):
            parse_timeout(bad)
    assert percent_encode("ok 100% \u00e9\n") == b"ok 100%25 %C3%A9%0A"


def test_mutual_tls_with_calls_side_by_side_and_large_answers(tmp_path):
    """h2 over TLS (ALPN), client certificates required; 8 calls at once on one TLS channel (the pool writes
    while the connection's thread reads) with answers larger than the client's window."""
    from serving.options import TlsFiles
    from tests.helpers import write_tls_files

    files = write_tls_files(tmp_path)
    server = Http2GrpcServer("127.0.0.1", 0, tls=TlsFiles(files["server_cert"], files["server_key"],
                                                            files["ca"]).server_context())
    server.add_generic_rpc_handlers((_handlers([]),))
    server.start()
    target, ca = f"127.0.0.1:{server.bound_port}", files["ca"].read_bytes()
    try:
        mutual = grpc.ssl_channel_credentials(ca, files["client_key"].read_bytes(), files["client_cert"].read_bytes())
        with grpc.secure_channel(target, mutual) as channel:
            echo = _echo(channel)
            assert echo(b"hi") == b"echo:hi"
            assert _side_by_side(lambda: len(echo(b"big:300000")), 8) == [300_000] * 8
        with grpc.secure_channel(target, grpc.ssl_channel_credentials(ca)) as anonymous:  # no client certificate
            with pytest.raises(grpc.RpcError) as e:
                _echo(anonymous)(b"hi", timeout=10)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(0)
