"""Helpers for the language-server tests: a small multi-file project and a pytest-lsp client that
talks to a real `ftlang lsp` process over stdio."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from lsprotocol import types as T

COMMON = """\
import "stdlib/models/smollm2.ft"

param lr = 2e-4
param epochs = 2

recipe base {
  model = smollm2_135m
  data facts = jsonl("data/train.jsonl") {
    format = instruction
    fields { instruction = "q", output = "a" }
  }
  dataset train = facts | to_chat(system = "Be brief.")
  split train { validation = 10% }
  method lora { r = 16, alpha = 32, targets = all_linear }
  train {
    lr = lr
    epochs = epochs
    batch = 4
  }
  hardware { gpu = "A100-40GB" }
  eval {
    metrics = [perplexity]
    gate perplexity < 20
  }
}
"""

CHILD = """\
import "common.ft"

recipe child extends base {
  train { lr = 1e-4, epochs = epochs }
}
"""

SERVER = [sys.executable, "-m", "ftlang", "lsp"]
PUBLISH = T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS


def make_workspace(root: Path, rows: int = 1200) -> Path:
    """root/.git, common.ft (params, a full recipe), child.ft (extends it), the data file."""
    (root / ".git").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "common.ft").write_text(COMMON, encoding="utf-8")
    (root / "child.ft").write_text(CHILD, encoding="utf-8")
    (root / "data" / "train.jsonl").write_text(
        "".join(json.dumps({"q": f"question {i}", "a": f"answer {i}"}) + "\n" for i in range(rows)),
        encoding="utf-8")
    return root


def uri(path: Path) -> str:
    return path.resolve().as_uri()


def position(text: str, needle: str, delta: int = 0, nth: int = 0) -> T.Position:
    """The position of the nth occurrence of needle (plus delta characters), ASCII text."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    at += delta
    line = text.count("\n", 0, at)
    return T.Position(line=line, character=at - (text.rfind("\n", 0, at) + 1))


async def initialize(client, root: Path, options: dict | None = None,
                     capabilities: T.ClientCapabilities | None = None) -> T.InitializeResult:
    folder = T.WorkspaceFolder(uri=uri(root), name=root.name)
    return await client.initialize_session(T.InitializeParams(
        capabilities=capabilities or T.ClientCapabilities(), root_uri=uri(root), workspace_folders=[folder],
        initialization_options=options or {"debounce_ms": 0}))


def make_client():
    """pytest-lsp's test client, whose publishDiagnostics handler also records the version and counts."""
    import pytest_lsp.client as pc

    def publish(ls, params: T.PublishDiagnosticsParams) -> None:  # `ls`: pygls passes the client first
        ls.versions[params.uri] = params.version
        ls.published[params.uri] = ls.published.get(params.uri, 0) + 1
        ls.diagnostics[params.uri] = params.diagnostics

    client = pc.LanguageClient(converter_factory=pc.default_converter)
    client.versions, client.published = {}, {}
    pc.register_lsp_features(client, {**pc.DEFAULT_CLIENT_FEATURES, PUBLISH: publish})
    return client


def config():
    import pytest_lsp

    return pytest_lsp.ClientServerConfig(server_command=SERVER, client_factory=make_client)


async def until_published(client, doc_uri: str, action, version: int | None = None,
                          timeout: float = 30) -> list[T.Diagnostic]:
    """Run action (sends a notification) and wait for the next diagnostics of doc_uri (for that version:
    a re-check scheduled earlier may publish the older text first)."""
    seen = client.published.get(doc_uri, 0)
    action()
    while client.published.get(doc_uri, 0) == seen or (version is not None and client.versions[doc_uri] != version):
        seen = client.published.get(doc_uri, 0)
        await asyncio.wait_for(client.wait_for_notification(PUBLISH), timeout)
    return list(client.diagnostics[doc_uri])


async def open_doc(client, path: Path, text: str | None = None) -> list[T.Diagnostic]:
    text = path.read_text(encoding="utf-8") if text is None else text
    item = T.TextDocumentItem(uri=uri(path), language_id="ftlang", version=1, text=text)
    return await until_published(client, uri(path),
                                 lambda: client.text_document_did_open(T.DidOpenTextDocumentParams(text_document=item)),
                                 version=1)


async def change_doc(client, path: Path, text: str, version: int) -> list[T.Diagnostic]:
    params = T.DidChangeTextDocumentParams(
        text_document=T.VersionedTextDocumentIdentifier(uri=uri(path), version=version),
        content_changes=[T.TextDocumentContentChangeWholeDocument(text=text)])
    return await until_published(client, uri(path), lambda: client.text_document_did_change(params), version)


def doc_id(path: Path) -> T.TextDocumentIdentifier:
    return T.TextDocumentIdentifier(uri=uri(path))
