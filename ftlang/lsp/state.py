"""The server's memory: open documents, workspace roots, and the checker's latest analysis of each.

Reads stay inside the workspace: a document is checked with the workspace folder as its root (or the
project root, when that is nearer), so imports and data paths that leave it are FT204 errors and are
never opened. A document outside every workspace folder is parsed only. (The checker also reads what
ftlang ships or finds installed: the stdlib, a GGUF header inside a Python package, a Hugging Face
cache config for a bare hub id.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pygls.uris import from_fs_path, to_fs_path

from ftlang.diagnostics import Diagnostic
from ftlang.semantic.check import CheckResult, check_text
from ftlang.source import SourceFile
from ftlang.syntax import ast


@dataclass
class Document:
    uri: str
    text: str
    version: int | None
    path: Path


@dataclass
class Analysis:
    """One checker run over one document's text."""

    doc: Document
    text: str
    source: SourceFile
    result: CheckResult | None  # None when the document lies outside the workspace (parse only)
    module: ast.Module | None
    diagnostics: list[Diagnostic]
    files: frozenset[str] = frozenset()  # real paths the run loaded (the document and its imports)
    root: Path | None = None
    generation: int = 0  # State.generation when it ran: fresh while none of its files changed since

    @property
    def program(self):
        return self.result.program if self.result is not None else None

    @property
    def contexts(self) -> dict:
        return self.result.contexts if self.result is not None else {}


def real(path: Path | str) -> str:
    return os.path.realpath(path)


def uri_to_path(uri: str) -> Path:
    p = to_fs_path(uri)
    return Path(p if p else uri.rsplit("/", 1)[-1] or "untitled.ft")


def path_to_uri(path: str | Path) -> str:
    return from_fs_path(str(path)) or str(path)


@dataclass
class State:
    roots: list[Path] = field(default_factory=list)  # workspace folders, real paths
    docs: dict[str, Document] = field(default_factory=dict)
    analyses: dict[str, Analysis] = field(default_factory=dict)
    good: dict[str, Analysis] = field(default_factory=dict)  # the last analysis whose text parsed
    generation: int = 0
    changed: dict[str, int] = field(default_factory=dict)  # real path -> generation of its last edit

    def touch(self, path: Path) -> None:
        """A document's text changed (or it opened or closed): analyses that loaded it go stale."""
        self.generation += 1
        self.changed[real(path)] = self.generation

    def fresh(self, a: Analysis) -> bool:
        return a.text == a.doc.text and all(self.changed.get(f, 0) <= a.generation for f in a.files)

    def set_roots(self, paths: list[str]) -> None:
        self.roots = sorted({Path(real(p)) for p in paths if p}, key=lambda p: -len(p.parts))

    def root_for(self, path: Path) -> Path | None:
        """The workspace folder holding the file (the deepest), narrowed to its project root if nearer;
        a client that names no workspace at all gets the file's project root (`ftlang check`'s)."""
        from ftlang.semantic.paths import inside
        from ftlang.semantic.resolve import project_root

        if not self.roots:
            return project_root(path)
        for r in self.roots:
            if inside(path, r):
                pr = project_root(path)
                return pr if inside(pr, r) else r
        return None

    def open(self, uri: str, text: str, version: int | None) -> Document:
        doc = Document(uri, text, version, uri_to_path(uri))
        self.docs[uri] = doc
        self.touch(doc.path)
        return doc

    def edit(self, doc: Document, text: str, version: int | None) -> None:
        doc.text, doc.version = text, version
        self.touch(doc.path)

    def overlay(self, root: Path) -> dict[str, str]:
        """Unsaved texts of the open documents under a root, by real path: imports see the buffers."""
        from ftlang.semantic.paths import inside

        return {real(d.path): d.text for d in self.docs.values() if inside(d.path, root)}

    def analyze(self, uri: str) -> Analysis | None:
        doc = self.docs.get(uri)
        if doc is None:
            return None
        hit = self.analyses.get(uri)
        if hit is not None and hit.doc is doc and self.fresh(hit):
            return hit
        generation = self.generation
        root = self.root_for(doc.path) if doc.uri.startswith("file:") else None
        if root is None:
            from ftlang.syntax.parser import parse

            source = SourceFile(str(doc.path), doc.text)
            module, diags = parse(source)
            a = Analysis(doc, doc.text, source, None, module, diags, frozenset({real(doc.path)}), None, generation)
        else:
            res = check_text(doc.text, doc.path, root=root, overlay=self.overlay(root))
            program = res.program
            source = res.sources.get(str(doc.path)) or SourceFile(str(doc.path), doc.text)
            module = program.main_module if program is not None else None
            files = frozenset(program.loaded) if program is not None else frozenset()
            a = Analysis(doc, doc.text, source, res, module, res.diagnostics, files, root, generation)
        self.analyses[uri] = a
        if a.module is not None:
            self.good[uri] = a
        return a

    def importers(self, uri: str) -> list[str]:
        """Open documents (other than this one) whose last check loaded this document's file."""
        doc = self.docs.get(uri)
        if doc is None:
            return []
        me = real(doc.path)
        return [u for u, a in self.analyses.items() if u != uri and u in self.docs and me in a.files]

    def close(self, uri: str) -> None:
        doc = self.docs.pop(uri, None)
        if doc is not None:
            self.touch(doc.path)
        self.analyses.pop(uri, None)
        self.good.pop(uri, None)
