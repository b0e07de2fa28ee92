"""The REST port's ASGI application: TF Serving's REST API and the V2 REST routes
(``serving.api.tfserving_rest``, ``serving.api.v2_rest``) behind one router. It reads a body within
the size limit and the idle time, runs the handler, and answers in TF Serving's shape; an unexpected
error is a 500 with its one line, never a traceback to the client.

A handler runs on a thread, so a model call never holds the event loop while other connections
wait; with one connection open (nothing to wait) and no batching, it runs on the loop itself: the
hand-off to a thread and back was a tenth of a lone client's request."""
import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Sized, Union

from serving.api import tfserving_rest, v2_rest
from serving.api.open_inference import HEADER_LENGTH
from serving.api.tfserving_rest import Answer, error_answer, json_answer
from serving.dataplane import DataPlane
from serving.errors import ServingError
from serving.runtime.traffic import CLIENT_KEY_HEADER

log = logging.getLogger("mlops.serving")

_CLIENT_KEY, _HEADER_LENGTH = CLIENT_KEY_HEADER.lower().encode(), HEADER_LENGTH.lower().encode()


def _route(plane: DataPlane, method: str, path: str, body: bytes, headers: Dict[bytes, bytes]) -> Answer:
    """The answer to one request (on a handler thread, or on the loop for a lone connection)."""
    client_key = headers.get(_CLIENT_KEY)
    client_key_text = client_key.decode("latin-1") if client_key is not None else None
    try:
        if method == "GET":
            return v2_rest.get(plane, path) if path.startswith("/v2") else tfserving_rest.get(plane, path)
        if path.startswith("/v2/"):
            length = headers.get(_HEADER_LENGTH)
            return v2_rest.infer(plane, path, body, length.decode("latin-1") if length is not None else None,
                                 client_key_text)
        return tfserving_rest.post(plane, path, body, client_key_text)
    except ServingError as e:
        return error_answer(e)
    except Exception as e:  # a bug answers 500 with its one line; the traceback goes to the server's log
        log.exception("internal error on %s %s", method, path)
        return error_answer(ServingError("INTERNAL", f"{type(e).__name__}: {e}"))


class RestApp:
    def __init__(self, plane: DataPlane, executor: ThreadPoolExecutor):
        self.plane = plane
        self.executor = executor
        self.connections: Sized = ()  # the server's open connections (set by the server once it exists)
        self.inline = not plane.options.enable_batching  # a batch waits for others: never on the loop
        self.limit = plane.options.max_request_bytes
        self.idle_s = plane.options.idle_timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        path = scope["raw_path"].decode("latin-1")
        headers = dict(scope["headers"])
        close = False
        if method not in ("GET", "POST"):
            answer, close = json_answer(501, {"error": f"Unsupported method ('{method}')"}), True
        elif method == "GET":
            answer = await self._run(method, path, b"", headers)
        else:
            body = await self._body(headers, receive)
            if body is None:
                return  # the client went away
            if isinstance(body, Answer):  # refused: the rest of the body is read and dropped (bounded)
                answer, close = body, body.status == 408
            else:
                answer = await self._run(method, path, body, headers)
        await _send(send, answer, close)

    async def _run(self, method: str, path: str, body: bytes, headers: Dict[bytes, bytes]) -> Answer:
        if self.inline and len(self.connections) <= 1:
            return _route(self.plane, method, path, body, headers)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, _route, self.plane, method, path, body, headers)

    async def _body(self, headers: Dict[bytes, bytes], receive) -> Union[bytes, Answer, None]:
        """The request's body; an Answer when it is refused (too large: 413; not all sent within the
        idle time: 408); None when the client disconnected."""
        length = headers.get(b"content-length")
        if length is not None and int(length) > self.limit:  # the parser has checked it is a number
            return _too_large(int(length), self.limit)
        try:
            return await asyncio.wait_for(self._read(receive), self.idle_s)
        except asyncio.TimeoutError:
            return json_answer(408, {"error": f"Request body not received within {self.idle_s:g} s"})

    async def _read(self, receive) -> Union[bytes, Answer, None]:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:  # a chunked body has no length up front
                return _too_large(size, self.limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(length: int, limit: int) -> Answer:
    return json_answer(413, {"error": f"Request body of {length} bytes exceeds the limit of {limit} bytes"})


async def _send(send, answer: Answer, close: bool) -> None:
    headers = [(b"content-type", answer.content_type.encode()), (b"content-length", str(len(answer.body)).encode())]
    headers += [(name.encode(), value.encode("latin-1")) for name, value in answer.headers]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})

