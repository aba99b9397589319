"""The OpenAI-compatible HTTP front of `ftlang serve`: a Starlette (ASGI) app run by uvicorn.

Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health.
Errors are JSON: {"error": {"message", "type", "code"}} with a 4xx status for every client mistake
(bad JSON, missing fields, unknown model or route, body over MAX_BODY, max_tokens over the cap,
a prompt longer than the model's context). `stream: true` answers with server-sent events in
OpenAI's chunk format, ending with `data: [DONE]`; `stream_options.include_usage` adds a last chunk
with the usage. A client that disconnects cancels its generation (serve/engine.py). Generation
runs on the engine's worker thread; the event loop only parses, encodes and streams.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from ftlang.serve.engine import Completion, Request

MAX_BODY = 1 << 20  # 1 MiB
ROLES = ("system", "user", "assistant")


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str, type_: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.code, self.type = status, message, code, type_


def _error_response(e: ApiError) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": {"message": e.message, "type": e.type, "code": e.code}}, status_code=e.status)


# ---------------------------------------------------------------------------- request validation


def _number(body: dict, key: str, kind: type, lo: float, hi: float | None, default: Any) -> Any:
    if key not in body or body[key] is None:
        return default
    v = body[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not float(v).is_integer()):
        raise ApiError(400, f"'{key}' must be a{'n integer' if kind is int else ' number'}", "invalid_type")
    if v < lo or (hi is not None and v > hi):
        raise ApiError(400, f"'{key}' must be between {lo} and {hi}", "invalid_value")
    return kind(v)


def _flag(body: dict, key: str) -> bool:
    v = body.get(key)
    if v is not None and not isinstance(v, bool):
        raise ApiError(400, f"'{key}' must be true or false", "invalid_type")
    return bool(v)


def gen_params(body: dict, cap: int) -> dict:
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and not isinstance(max_tokens, bool) and isinstance(max_tokens, int) and max_tokens > cap:
        raise ApiError(400, f"max_tokens {max_tokens} is over this server's cap of {cap}", "max_tokens_too_large")
    params = {
        "max_tokens": _number({"max_tokens": max_tokens}, "max_tokens", int, 1, cap, min(64, cap)),
        "temperature": _number(body, "temperature", float, 0.0, 2.0, None),
        "top_p": _number(body, "top_p", float, 0.0, 1.0, None),
        "stream": _flag(body, "stream"),
    }
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and not (isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop)):
        raise ApiError(400, "'stop' must be a string or a list of up to 4 strings", "invalid_type")
    params["stop"] = [s for s in stop or [] if s]
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise ApiError(400, "'stream_options' must be an object", "invalid_type")
    if options is not None and not params["stream"]:
        raise ApiError(400, "'stream_options' is only allowed with stream: true", "invalid_value")
    params["include_usage"] = _flag(options or {}, "include_usage")
    if body.get("n", 1) != 1:
        raise ApiError(400, "only n = 1 is supported", "unsupported_parameter")
    return params


def _model(body: dict, pool: Any) -> str:
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "missing required field 'model' (an adapter name, or 'base')", "missing_field")
    if name not in pool.names():  # a name given at start-up, never a path: nothing else is loaded
        raise ApiError(404, f"the model '{name[:200]}' does not exist; served: {', '.join(pool.names())}",
                       "model_not_found")
    return name


def _messages(body: dict) -> list[dict]:
    msgs = body.get("messages")
    if msgs is None:
        raise ApiError(400, "missing required field 'messages'", "missing_field")
    if not isinstance(msgs, list) or not msgs:
        raise ApiError(400, "'messages' must be a non-empty list", "invalid_type")
    out = []
    for i, m in enumerate(msgs):
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                             and isinstance(p.get("text"), str) for p in content):
            content = "".join(p["text"] for p in content)  # OpenAI's content parts, text only
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(content, str):
            raise ApiError(400, f"messages[{i}] needs a role ({'/'.join(ROLES)}) and a string content (or text "
                           "parts)", "invalid_value")
        out.append({"role": m["role"], "content": content})
    return out


def _prompt(body: dict) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if prompt is None:
        raise ApiError(400, "missing required field 'prompt'", "missing_field")
    if not isinstance(prompt, str):
        raise ApiError(400, "'prompt' must be a string", "invalid_type")
    return prompt


def _encode(pool: Any, text: str, max_tokens: int) -> list[int]:
    ids = pool.encode(text)
    if not ids:  # nothing to continue from (this tokenizer adds no BOS)
        raise ApiError(400, "the prompt is empty", "invalid_value")
    if pool.context and len(ids) + max_tokens > pool.context:
        raise ApiError(400, f"the prompt ({len(ids)} tokens) plus max_tokens ({max_tokens}) is over the model's "
                       f"context of {pool.context} tokens", "context_length_exceeded")
    return ids


async def _read_body(request: Any) -> dict:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "invalid Content-Length", "invalid_request")
        if int(declared) > MAX_BODY:  # refused before reading a byte of it
            raise ApiError(413, f"request body of {declared} bytes is over the {MAX_BODY}-byte limit",
                           "request_too_large")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ApiError(413, f"request body over the {MAX_BODY}-byte limit", "request_too_large")
    try:
        body = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ApiError(400, f"the body is not valid JSON: {e}", "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", "invalid_json")
    return body


# ---------------------------------------------------------------------------- generation


def _usage(c: Completion) -> dict:
    return {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
            "total_tokens": c.prompt_tokens + c.completion_tokens}


def _submit(pool: Any, name: str, ids: list[int], params: dict) -> tuple[Request, asyncio.Queue]:
    """Queue a request on the engine; its events arrive on the returned asyncio queue."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    req = Request(name, ids, params["max_tokens"], lambda kind, value: loop.call_soon_threadsafe(
        events.put_nowait, (kind, value)), temperature=params["temperature"], top_p=params["top_p"],
        stop=params["stop"], stream=params["stream"])
    pool.engine.submit(req)
    return req, events


async def _until_disconnect(request: Any) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _wait_done(request: Any, req: Request, events: asyncio.Queue) -> Completion | None:
    """The finished completion; None (and the generation cancelled) if the client disconnects first."""
    gone = asyncio.ensure_future(_until_disconnect(request))
    try:
        while True:
            getter = asyncio.ensure_future(events.get())
            await asyncio.wait({getter, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                req.cancel()
                return None
            kind, value = getter.result()
            if kind == "error":
                raise value
            if kind == "done":
                return value
    finally:
        gone.cancel()


class _Shape:
    """The fields that differ between chat and text completions, in one place."""

    def __init__(self, chat: bool, name: str):
        self.chat, self.name = chat, name
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())

    def head(self, obj: str) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.name}

    def full(self, c: Completion) -> dict:
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": c.text}, "logprobs": None,
                      "finish_reason": c.finish_reason}
        else:
            choice = {"index": 0, "text": c.text, "logprobs": None, "finish_reason": c.finish_reason}
        return {**self.head("chat.completion" if self.chat else "text_completion"), "choices": [choice],
                "usage": _usage(c)}

    def chunk(self, delta: str | None, finish: str | None = None, role: bool = False) -> dict:
        if self.chat:
            d: dict = {"role": "assistant"} if role else {}
            if delta is not None:
                d["content"] = delta
            choice = {"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": delta or "", "logprobs": None, "finish_reason": finish}
        return {**self.head("chat.completion.chunk" if self.chat else "text_completion"), "choices": [choice]}


def _sse(payload: dict | str) -> bytes:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()


async def _stream(shape: _Shape, req: Request, events: asyncio.Queue, include_usage: bool) -> AsyncIterator[bytes]:
    extra = {"usage": None} if include_usage else {}
    try:
        if shape.chat:
            yield _sse({**shape.chunk("", role=True), **extra})
        while True:
            kind, value = await events.get()
            if kind == "delta":
                yield _sse({**shape.chunk(value), **extra})
            elif kind == "error":
                yield _sse({"error": {"message": f"internal error: {type(value).__name__}: {value}",
                                      "type": "server_error", "code": "internal_error"}})
                return
            else:
                yield _sse({**shape.chunk(None if shape.chat else "", value.finish_reason), **extra})
                if include_usage:
                    yield _sse({**shape.head(shape.chunk(None)["object"]), "choices": [], "usage": _usage(value)})
                yield _sse("[DONE]")
                return
    finally:
        req.cancel()  # a no-op once finished; stops the generation when the client went away


async def _complete(request: Any, chat: bool) -> Any:
    from starlette.responses import JSONResponse, Response, StreamingResponse

    pool = request.app.state.pool
    body = await _read_body(request)
    name = _model(body, pool)
    text = pool.render_chat(_messages(body)) if chat else _prompt(body)
    params = gen_params(body, pool.max_tokens_cap)
    ids = _encode(pool, text, params["max_tokens"])
    req, events = _submit(pool, name, ids, params)
    shape = _Shape(chat, name)
    if params["stream"]:
        return StreamingResponse(_stream(shape, req, events, params["include_usage"]),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    done = await _wait_done(request, req, events)
    if done is None:
        return Response(status_code=499)  # nginx's "client closed request": nobody reads it
    return JSONResponse(shape.full(done))


# ---------------------------------------------------------------------------- the app


def make_app(pool: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    started = int(time.time())

    async def health(request: Any) -> Any:
        return JSONResponse({"status": "ok", "models": pool.names()})

    async def models(request: Any) -> Any:
        return JSONResponse({"object": "list", "data": [
            {"id": n, "object": "model", "created": started, "owned_by": "ftlang"} for n in pool.names()]})

    async def chat(request: Any) -> Any:
        return await _guarded(request, True)

    async def completions(request: Any) -> Any:
        return await _guarded(request, False)

    async def _guarded(request: Any, is_chat: bool) -> Any:
        try:
            return await _complete(request, is_chat)
        except ApiError as e:
            return _error_response(e)

    async def http_error(request: Any, exc: HTTPException) -> Any:
        path = request.url.path
        if exc.status_code == 405:
            return _error_response(ApiError(405, f"method {request.method} is not allowed on {path}",
                                            "method_not_allowed"))
        if exc.status_code == 404:
            return _error_response(ApiError(404, f"no route {request.method} {path}", "not_found"))
        return _error_response(ApiError(exc.status_code, str(exc.detail), "invalid_request"))

    async def internal(request: Any, exc: Exception) -> Any:
        return _error_response(ApiError(500, f"internal error: {type(exc).__name__}: {exc}", "internal_error",
                                        "server_error"))

    app = Starlette(routes=[
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
    ], exception_handlers={HTTPException: http_error, Exception: internal})
    app.state.pool = pool
    return app


class Server:
    """uvicorn on a socket bound up front (so port 0 is known before serving), startable in a thread."""

    def __init__(self, pool: Any, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False):
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(2048)  # connections queue up until uvicorn starts accepting
        self.server_address = self.sock.getsockname()[:2]
        self.pool = pool
        config = uvicorn.Config(make_app(pool), http="h11", lifespan="off", log_level="warning" if quiet else "info",
                                access_log=not quiet, timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.finished = threading.Event()

    def serve_forever(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.finished.set()

    def shutdown(self) -> None:
        self.server.should_exit = True
        self.finished.wait(timeout=30)

    def server_close(self) -> None:
        self.pool.engine.close()
        self.sock.close()


def make_server(pool: Any, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False) -> Server:
    return Server(pool, host, port, quiet)
