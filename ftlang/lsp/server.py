"""The ftlang language server (pygls over stdio): the checker live in the editor.

Diagnostics: a change is checked at once when the document was quiet for the debounce window, and
otherwise once the typing pauses for that window (a burst costs one check); only the changed
document and the open documents that import it are re-checked. Data rows are validated on save only.
Every handler is guarded: a bug shows up as a log message, never as a dead server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer

from ftlang import __version__
from ftlang.lsp.diagnostics import to_lsp
from ftlang.lsp.state import Analysis, State

log = logging.getLogger("ftlang.lsp")
DEBOUNCE_MS = 150


class FtlangServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("ftlang", __version__, text_document_sync_kind=T.TextDocumentSyncKind.Full)
        self.state = State()
        self.debounce_s = DEBOUNCE_MS / 1000
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._last_change: dict[str, float] = {}
        self._data: dict[str, list] = {}  # uri -> data-check diagnostics of the last save

    @property
    def encoding(self) -> str:
        enc = getattr(self.workspace, "position_encoding", None)  # negotiated by pygls at initialize
        return str(getattr(enc, "value", enc) or "utf-16")

    def report_server_error(self, error: Exception, source) -> None:
        log.error("ftlang lsp: %s: %s", type(error).__name__, error)

    def log_error(self, what: str, e: Exception) -> None:
        """A bug in a handler: logged to stderr and to the client's log (tests assert there is none)."""
        import traceback

        log.error("%s: %s", what, "".join(traceback.format_exception(e)))
        try:
            self.window_log_message(T.LogMessageParams(type=T.MessageType.Error,
                                                       message=f"ftlang lsp: {what}: {type(e).__name__}: {e}"))
        except Exception:  # noqa: BLE001 - no client to tell
            pass

    # -------------------------------------------------------------------- roots & analyses

    def refresh_roots(self) -> None:
        ws = self.workspace
        paths = [uri_path for f in (ws.folders or {}).values() if (uri_path := _fs(f.uri))]
        if not paths and ws.root_path:
            paths = [ws.root_path]
        self.state.set_roots(paths)

    def analysis(self, uri: str) -> Analysis | None:
        """The analysis of the document's current text (checked now if a scheduled check is pending)."""
        return self.state.analyze(uri)

    # -------------------------------------------------------------------- diagnostics

    def schedule(self, uri: str, changed: bool = True) -> None:
        """Check a document now if it was quiet, else after the debounce window (a burst coalesces)."""
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        quiet = now - self._last_change.get(uri, 0.0) >= self.debounce_s
        if changed:
            self._last_change[uri] = now
        old = self._timers.pop(uri, None)
        if old is not None:
            old.cancel()
        delay = 0.0 if quiet or not changed else self.debounce_s
        self._timers[uri] = loop.call_later(delay, self._check, uri, changed)

    def _check(self, uri: str, changed: bool) -> None:
        self._timers.pop(uri, None)
        try:
            a = self.analysis(uri)
            if a is None:
                return
            self.publish(a)
            if changed:
                for other in self.state.importers(uri):
                    self.schedule(other, changed=False)
        except Exception as e:  # noqa: BLE001 - the server outlives any bug in one check
            self.log_error(f"check of {uri} failed", e)

    def publish(self, a: Analysis) -> None:
        diags = to_lsp(a, [*a.diagnostics, *self._data.get(a.doc.uri, [])], self.encoding)
        self.text_document_publish_diagnostics(
            T.PublishDiagnosticsParams(uri=a.doc.uri, diagnostics=diags, version=a.doc.version))

    def check_data(self, uri: str) -> None:
        """On save: validate every local data row of the document's plans (`ftlang check --data`)."""
        from ftlang.commands.check import data_diagnostics

        a = self.analysis(uri)
        if a is None or a.result is None:
            return
        self._data[uri] = data_diagnostics(a.result.plans.values())
        self.publish(a)


def _fs(uri: str) -> str | None:
    from pygls.uris import to_fs_path

    return to_fs_path(uri)


def guarded(default=None) -> Callable:
    """A handler that logs its exception and answers `default` instead of failing the request."""

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(ls: FtlangServer, params):
            try:
                return fn(ls, params)
            except Exception as e:  # noqa: BLE001 - one bad request must not take the server down
                ls.log_error(f"{fn.__name__} failed", e)
                return default

        return wrapper

    return deco

