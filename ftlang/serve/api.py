"""The OpenAI-compatible HTTP front of `ftlang serve` (standard library ThreadingHTTPServer).

Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health.
Errors are JSON: {"error": {"message", "type", "code"}} with a 4xx status for every client mistake
(bad JSON, missing fields, unknown model, body over MAX_BODY, max_tokens over the cap).
"""

from __future__ import annotations

import json
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 1 << 20  # 1 MiB
DRAIN_LIMIT = 16 << 20  # bodies up to this size are read and dropped before the 413
ROLES = ("system", "user", "assistant")


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str, type_: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.code, self.type = status, message, code, type_


def _number(body: dict, key: str, kind: type, lo: float, hi: float | None, default: Any) -> Any:
    if key not in body or body[key] is None:
        return default
    v = body[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not float(v).is_integer()):
        raise ApiError(400, f"'{key}' must be a{'n integer' if kind is int else ' number'}", "invalid_type")
    if v < lo or (hi is not None and v > hi):
        raise ApiError(400, f"'{key}' must be between {lo} and {hi}", "invalid_value")
    return kind(v)


def _gen_params(body: dict, cap: int) -> dict:
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and not isinstance(max_tokens, bool) and isinstance(max_tokens, int) and max_tokens > cap:
        raise ApiError(400, f"max_tokens {max_tokens} is over this server's cap of {cap}", "max_tokens_too_large")
    params = {
        "max_tokens": _number({"max_tokens": max_tokens}, "max_tokens", int, 1, cap, min(64, cap)),
        "temperature": _number(body, "temperature", float, 0.0, 2.0, None),
        "top_p": _number(body, "top_p", float, 0.0, 1.0, None),
    }
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise ApiError(400, "'stop' must be a string or a list of strings", "invalid_type")
    params["stop"] = stop
    if body.get("stream"):
        raise ApiError(400, "streaming is not supported by ftlang serve", "unsupported_parameter")
    if body.get("n", 1) != 1:
        raise ApiError(400, "only n = 1 is supported", "unsupported_parameter")
    return params


def _model(body: dict, pool: Any) -> str:
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "missing required field 'model' (an adapter name, or 'base')", "missing_field")
    if name not in pool.names():
        raise ApiError(404, f"the model '{name}' does not exist; served: {', '.join(pool.names())}",
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
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ApiError(400, f"messages[{i}] needs a role ({'/'.join(ROLES)}) and a string content", "invalid_value")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _usage(c: Any) -> dict:
    return {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
            "total_tokens": c.prompt_tokens + c.completion_tokens}


def chat_completions(pool: Any, body: dict) -> dict:
    name = _model(body, pool)
    messages = _messages(body)
    c = pool.chat(name, messages, **_gen_params(body, pool.max_tokens_cap))
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
        "model": name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": c.text}, "finish_reason": c.finish_reason}],
        "usage": _usage(c),
    }


def completions(pool: Any, body: dict) -> dict:
    name = _model(body, pool)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if prompt is None:
        raise ApiError(400, "missing required field 'prompt'", "missing_field")
    if not isinstance(prompt, str):
        raise ApiError(400, "'prompt' must be a string", "invalid_type")
    c = pool.complete(name, prompt, **_gen_params(body, pool.max_tokens_cap))
    return {
        "id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
        "model": name,
        "choices": [{"index": 0, "text": c.text, "logprobs": None, "finish_reason": c.finish_reason}],
        "usage": _usage(c),
    }


def make_handler(pool: Any, quiet: bool = False) -> type[BaseHTTPRequestHandler]:
    started = int(time.time())

    class Handler(BaseHTTPRequestHandler):
        server_version = "ftlang-serve"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            if not quiet:
                super().log_message(format, *args)

        def _send(self, status: int, payload: dict, close: bool = False) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def _error(self, e: ApiError, close: bool = False) -> None:
            self._send(e.status, {"error": {"message": e.message, "type": e.type, "code": e.code}}, close)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path == "/health":
                self._send(200, {"status": "ok", "models": pool.names()})
            elif path == "/v1/models":
                self._send(200, {"object": "list", "data": [
                    {"id": n, "object": "model", "created": started, "owned_by": "ftlang"} for n in pool.names()
                ]})
            else:
                self._error(ApiError(404, f"no route GET {path}", "not_found"))

        def _body(self) -> dict:
            length_text = self.headers.get("Content-Length")
            if length_text is None:
                raise ApiError(411, "a Content-Length header is required", "length_required")
            try:
                length = int(length_text)
            except ValueError:
                raise ApiError(400, "invalid Content-Length", "invalid_request") from None
            if length < 0:
                raise ApiError(400, "invalid Content-Length", "invalid_request")
            if length > MAX_BODY:
                self._drain(length)
                raise ApiError(413, f"request body of {length} bytes is over the {MAX_BODY}-byte limit",
                               "request_too_large")
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                raise ApiError(400, f"the body is not valid JSON: {e}", "invalid_json") from None
            if not isinstance(body, dict):
                raise ApiError(400, "the body must be a JSON object", "invalid_json")
            return body

        def _method_not_allowed(self) -> None:
            self._error(ApiError(405, f"method {self.command} is not allowed on {self.path.split('?', 1)[0]}",
                                 "method_not_allowed"), close=True)

        do_PUT = do_DELETE = do_PATCH = _method_not_allowed  # noqa: N815 - http.server's naming

        def _drain(self, length: int) -> None:
            """Read and drop a moderately oversized body so the client can read our 413 (no broken pipe)."""
            if length > DRAIN_LIMIT:
                return  # far too large: the connection is closed after the answer instead
            left = length
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)

        def do_POST(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            routes = {"/v1/chat/completions": chat_completions, "/v1/completions": completions}
            try:
                if path not in routes:
                    raise ApiError(404, f"no route POST {path}", "not_found")
                body = self._body()
                self._send(200, routes[path](pool, body))
            except ApiError as e:
                # an unread (oversized) body would be parsed as the next request: close instead
                self._error(e, close=e.status in (411, 413) or e.code == "invalid_request")
            except Exception as e:  # noqa: BLE001 - a server answers, it does not die
                self._error(ApiError(500, f"internal error: {type(e).__name__}: {e}", "internal_error", "server_error"))

    return Handler


def make_server(pool: Any, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(pool, quiet))
    server.daemon_threads = True
    return server
