"""The LSP methods the server answers, each a thin guarded handler over the feature modules; `build` and
`serve` put them on a server (here, so server.py need not import this module back)."""

from __future__ import annotations

import logging

from lsprotocol import types as T

from ftlang.lsp import actions, completion, definitions, hover, symbols
from ftlang.lsp.positions import Positions
from ftlang.lsp.server import FtlangServer, guarded
from ftlang.lsp.state import path_to_uri, real, uri_to_path
from ftlang.source import SourceFile


def _location(ls: FtlangServer, span) -> T.Location:
    """A span as an LSP location, converted with the text the server holds for that file."""
    uri = path_to_uri(real(span.file))
    doc = next((d for d in ls.state.docs.values() if real(d.path) == real(span.file)), None)
    if doc is not None:
        uri, text = doc.uri, doc.text
    else:
        try:
            text = open(span.file, encoding="utf-8", errors="replace").read()
        except OSError:
            text = ""
    return T.Location(uri=uri, range=Positions(SourceFile(span.file, text), ls.encoding).span_range(span))


def _at(ls: FtlangServer, params) -> tuple:
    """(analysis, positions, offset) of a text-document-position request; (None, None, 0) if not open."""
    a = ls.analysis(params.text_document.uri)
    if a is None:
        return None, None, 0
    pos = Positions(a.source, ls.encoding)
    return a, pos, pos.offset(params.position)


def register(server: FtlangServer) -> None:  # noqa: C901 - one registration per LSP method
    # long: one short handler per LSP method, each a closure registered on this server
    @server.feature(T.INITIALIZE)
    @guarded()
    def initialize(ls: FtlangServer, params: T.InitializeParams):
        opts = params.initialization_options if isinstance(params.initialization_options, dict) else {}
        if isinstance(opts.get("debounce_ms"), (int, float)) and opts["debounce_ms"] >= 0:
            ls.debounce_s = opts["debounce_ms"] / 1000

    @server.feature(T.INITIALIZED)
    @guarded()
    def initialized(ls: FtlangServer, params):
        ls.refresh_roots()

    @server.feature(T.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    @guarded()
    def folders(ls: FtlangServer, params):
        ls.refresh_roots()
        ls.state.analyses.clear()
        ls.state.good.clear()
        for uri in ls.state.docs:
            ls.schedule(uri, changed=False)

    @server.feature(T.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    @guarded()
    def watched(ls: FtlangServer, params: T.DidChangeWatchedFilesParams):
        # an imported recipe or a data file changed on disk (not through an open buffer): re-check
        for change in params.changes:
            ls.state.touch(uri_to_path(change.uri))
        for uri in ls.state.docs:
            ls.schedule(uri, changed=False)

    @server.feature(T.TEXT_DOCUMENT_DID_OPEN)
    @guarded()
    def did_open(ls: FtlangServer, params: T.DidOpenTextDocumentParams):
        if not ls.state.roots:
            ls.refresh_roots()
        d = params.text_document
        ls.state.open(d.uri, d.text, d.version)
        ls.schedule(d.uri, changed=False)
        for other in ls.state.importers(d.uri):  # they now read the buffer, not the file
            ls.schedule(other, changed=False)

    @server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
    @guarded()
    def did_change(ls: FtlangServer, params: T.DidChangeTextDocumentParams):
        d = params.text_document
        doc = ls.state.docs.get(d.uri)
        if doc is None:
            return
        text = doc.text
        for change in params.content_changes:
            if isinstance(change, T.TextDocumentContentChangeWholeDocument):
                text = change.text
            else:  # we ask for full sync; a client that sends ranges anyway gets them applied
                pos = Positions(SourceFile(str(doc.path), text), ls.encoding)
                start, end = pos.offset(change.range.start), pos.offset(change.range.end)
                text = text[:start] + change.text + text[end:]
        ls.state.edit(doc, text, d.version)
        ls._data.pop(d.uri, None)
        ls.schedule(d.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_SAVE)
    @guarded()
    def did_save(ls: FtlangServer, params: T.DidSaveTextDocumentParams):
        ls.check_data(params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
    @guarded()
    def did_close(ls: FtlangServer, params: T.DidCloseTextDocumentParams):
        uri = params.text_document.uri
        importers = ls.state.importers(uri)
        ls.state.close(uri)
        ls._data.pop(uri, None)
        ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
        for other in importers:  # back to the file on disk
            ls.schedule(other, changed=False)

    @server.feature(T.TEXT_DOCUMENT_HOVER)
    @guarded()
    def on_hover(ls: FtlangServer, params: T.HoverParams):
        a, pos, offset = _at(ls, params)
        found = hover.hover(a, offset) if a is not None else None
        if found is None:
            return None
        md, (start, end) = found
        return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=md), range=pos.range(start, end))

    @server.feature(T.TEXT_DOCUMENT_COMPLETION,
                    T.CompletionOptions(trigger_characters=["=", "|", " ", "[", ",", '"', "("]))
    @guarded(default=[])
    def on_completion(ls: FtlangServer, params: T.CompletionParams):
        # no check on the keystroke: the cursor context comes from the raw text, names from the
        # last analysis (the debounced check brings it up to date)
        uri = params.text_document.uri
        doc = ls.state.docs.get(uri)
        if doc is None:
            return []
        offset = Positions(SourceFile(str(doc.path), doc.text), ls.encoding).offset(params.position)
        scope = ls.state.good.get(uri) or ls.state.analyses.get(uri)
        return T.CompletionList(is_incomplete=False, items=completion.complete(scope, doc, offset))

    @server.feature(T.TEXT_DOCUMENT_DEFINITION)
    @guarded()
    def on_definition(ls: FtlangServer, params: T.DefinitionParams):
        a, _pos, offset = _at(ls, params)
        found = definitions.definition(a, offset) if a is not None else None
        if found is None:
            return None
        if not hasattr(found, "file"):  # an imported file
            zero = T.Position(line=0, character=0)
            return T.Location(uri=path_to_uri(found), range=T.Range(start=zero, end=zero))
        return _location(ls, found)

    @server.feature(T.TEXT_DOCUMENT_REFERENCES)
    @guarded(default=[])
    def on_references(ls: FtlangServer, params: T.ReferenceParams):
        return _references(ls, params)

    @server.feature(T.TEXT_DOCUMENT_FORMATTING)
    @guarded()
    def on_format(ls: FtlangServer, params: T.DocumentFormattingParams):
        a = ls.analysis(params.text_document.uri)
        return None if a is None else actions.format_edits(a, ls.encoding)

    @server.feature(T.TEXT_DOCUMENT_CODE_ACTION,
                    T.CodeActionOptions(code_action_kinds=[T.CodeActionKind.QuickFix]))
    @guarded(default=[])
    def on_code_action(ls: FtlangServer, params: T.CodeActionParams):
        a = ls.analysis(params.text_document.uri)
        return [] if a is None else actions.code_actions(a, list(params.context.diagnostics), ls.encoding)

    @server.feature(T.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    @guarded(default=[])
    def on_symbols(ls: FtlangServer, params: T.DocumentSymbolParams):
        uri = params.text_document.uri
        a = ls.analysis(uri)
        if a is not None and a.module is None:
            a = ls.state.good.get(uri)  # while the text does not parse, the last outline that did
        return [] if a is None else symbols.document_symbols(a, ls.encoding)

    @server.feature(T.TEXT_DOCUMENT_INLAY_HINT)
    @guarded(default=[])
    def on_inlay(ls: FtlangServer, params: T.InlayHintParams):
        a = ls.analysis(params.text_document.uri)
        if a is None:
            return []
        return symbols.inlay_hints(a, ls.encoding, params.range.start.line, params.range.end.line)


def _references(ls: FtlangServer, params: T.ReferenceParams) -> list[T.Location]:
    from ftlang.lsp.locate import chain_at
    from ftlang.semantic.check import resolve_program

    a, _pos, offset = _at(ls, params)
    if a is None or a.module is None or a.program is None:
        return []
    decl = definitions.target(a.program, chain_at(a.module, offset), offset)
    if decl is None:
        return []
    seen: dict[tuple[str, int], object] = {}
    programs = [a.program]
    for path in definitions.workspace_files(ls.state.roots):
        root = ls.state.root_for(path)
        if root is None or real(path) == real(a.doc.path):
            continue
        overlay = ls.state.overlay(root)
        programs.append(resolve_program(path, overlay.get(real(path)), root=root, overlay=overlay))
    for program in programs:
        for span in definitions.uses_in(program, decl):
            seen.setdefault((real(span.file), span.start), span)
    include = params.context.include_declaration
    return [_location(ls, s) for (f, start), s in sorted(seen.items(), key=lambda kv: kv[0])
            if include or not (f == real(decl.file) and start == decl.start)]


def build() -> FtlangServer:
    server = FtlangServer()
    register(server)
    return server


def serve() -> None:
    logging.basicConfig(level=logging.WARNING, format="ftlang lsp: %(message)s")
    build().start_io()
