"""Chat templates: the tokenizer's own or a stdlib jinja2 file, rendered in a sandbox, with the character
spans of the assistant turns (found by rendering prefixes, so any prefix-consistent template works).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache

from jinja2 import TemplateError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ftlang.diagnostics import DiagnosticError, error
from ftlang.resources import read_shipped, stdlib_dir
from ftlang.source import Span

#: the tokens that end a turn in the common chat templates (besides the tokenizer's eos)
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "</s>", "<|endoftext|>")

STDLIB_TEMPLATES = ("chatml", "llama2", "llama3", "alpaca", "mistral")


def _raise(message: str):
    raise TemplateError(message)


@lru_cache(maxsize=32)
def _compile(source: str):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
    env.globals["raise_exception"] = _raise
    return env.from_string(source)


def stdlib_template(name: str, span: Span | None = None) -> str:
    path = stdlib_dir() / "templates" / f"{name}.jinja"
    if not path.is_file():
        raise DiagnosticError(error("FT621", f"no stdlib chat template {name!r}", span,
                                    f"use one of: {', '.join(STDLIB_TEMPLATES)}"))
    return read_shipped(path)


@dataclass
class ChatRenderer:
    source: str  # the jinja2 text
    name: str  # "tokenizer" or the stdlib name
    bos_token: str | None = None
    eos_token: str | None = None
    _skeletons: dict = field(default_factory=dict, repr=False, compare=False)

    def end_tokens(self) -> tuple[str, ...]:
        return tuple(t for t in (self.eos_token, *END_OF_TURN) if t)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()

    def render(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        try:
            return _compile(self.source).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                                bos_token=self.bos_token or "", eos_token=self.eos_token or "")
        except TemplateError as e:
            raise DiagnosticError(error("FT621", f"chat template {self.name!r} failed to render: {e}", None)) from None

    def spans_batch(self, conversations: list[list[dict]]) -> list[tuple[str, list[tuple[int, int]]]]:
        """`spans` of many conversations: each shape (its sequence of roles) is rendered by jinja2 once with
        placeholder contents, then filled in by string joins (see Skeleton); conversations the skeleton
        cannot stand for take the jinja2 path."""
        out = []
        for messages in conversations:
            shape = tuple(m["role"] for m in messages)
            sk = self._skeletons.get(shape)
            if sk is None:
                sk = self._skeletons[shape] = Skeleton.build(self, messages) if content_verbatim(self.source) \
                    else Skeleton([], [], ok=False)
            contents = [m["content"] for m in messages]
            got = sk.fill(contents) if sk.ok and _plain(contents) else None
            if got is not None and sk.checks > 0:  # the first rows of a shape are compared with jinja2
                sk.checks -= 1
                if got != self.spans(messages):
                    sk.ok, got = False, None
            out.append(got if got is not None else self.spans(messages))
        return out

    def spans(self, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
        """The full text and the [start, end) character span of every assistant turn.

        An assistant turn's span starts where the prefix rendered with the generation prompt ends and stops
        where the conversation rendered up to that turn ends, so the template's end-of-turn text belongs
        to the turn that emits it (and a template that does not emit it there is caught by the EOS check)."""
        full = self.render(messages)
        spans = []
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            prefix = self.render(messages[:i], add_generation_prompt=True)
            upto = full if i == len(messages) - 1 else self.render(messages[: i + 1])
            start, end = len(prefix), len(upto)
            if start > end or not full.startswith(prefix) or not full.startswith(upto):
                start, end = _search_span(full, m["content"], spans, self.end_tokens())
            spans.append((start, end))
        return full, spans


_MARK = ("\x00ftA", "\x01")  # placeholder contents: letters of both cases, so a filter that rewrites
_MARK2 = ("\x02ftB", "\x03")  # content (upper, title, replace) is caught; no whitespace for trim to cut


def _plain(contents: list[str]) -> bool:
    # content that a template's trim would change, that is empty (falsy), or that holds the placeholder
    # bytes goes through jinja2
    for c in contents:
        if not c or c[0].isspace() or c[-1].isspace() or "\x00" in c or "\x02" in c:
            return False
    return True


#: content flows on through these (into the output or a test); a CondExpr it is a value of, not the test
_PASS = (nodes.Add, nodes.Concat, nodes.And, nodes.Or, nodes.CondExpr)


@lru_cache(maxsize=32)
def content_verbatim(source: str) -> bool:
    """Whether the template uses message contents only as output text (joined with `+`, `~` or `| trim`),
    as truth values, or through `set` names used so: then the text around the contents cannot depend
    on them, and a Skeleton stands for the template. Anything else (a comparison, a method call, a
    test, slicing, another filter) keeps the template on jinja2."""
    try:
        tree = ImmutableSandboxedEnvironment().parse(source)
    except TemplateError:
        return False
    parent: dict[int, nodes.Node] = {}
    stack: list[nodes.Node] = [tree]
    while stack:
        n = stack.pop()
        for c in n.iter_child_nodes():
            parent[id(c)] = n
            stack.append(c)
    names: set[str] = set()
    refs = [n for n in tree.find_all((nodes.Getattr, nodes.Getitem))
            if getattr(n, "attr", None) == "content"
            or isinstance(getattr(n, "arg", None), nodes.Const) and n.arg.value == "content"]
    while refs:
        n = refs.pop()
        while True:
            up = parent.get(id(n))
            if up is None or isinstance(up, (nodes.Output, nodes.Not)) or \
                    isinstance(up, (nodes.If, nodes.CondExpr)) and up.test is n:
                break  # output text, or a truth value (a content here is never empty: always true)
            if isinstance(up, nodes.Filter) and up.name == "trim" and up.node is n:
                n = up
            elif isinstance(up, nodes.Assign) and isinstance(up.target, nodes.Name):
                if up.target.name not in names:
                    names.add(up.target.name)
                    refs += [x for x in tree.find_all(nodes.Name) if x.name == up.target.name and x.ctx == "load"]
                break
            elif isinstance(up, _PASS):
                n = up
            else:
                return False
    return True


@dataclass
class Skeleton:
    """A template rendered once per conversation shape: literal text between the message contents.

    Valid only when contents appear verbatim, once each, in order, and the text around them does not
    depend on them (two placeholder sets give the same literals); the first rows are also compared
    with a full jinja2 render (`checks`)."""

    parts: list[str | int]  # literals and message indexes
    span_lens: list[tuple[list[str | int], list[str | int]]]  # per assistant turn: (prefix, upto) parts
    ok: bool = True
    checks: int = 8

    @staticmethod
    def _split(text: str, mark: tuple[str, str], n: int) -> list[str | int] | None:
        pieces = re.split(re.escape(mark[0]) + r"(\d+)" + re.escape(mark[1]), text)
        idx = [int(x) for x in pieces[1::2]]
        if idx != sorted(set(idx)) or any(i >= n for i in idx):
            return None
        return [int(p) if k % 2 else p for k, p in enumerate(pieces)]

    @classmethod
    def build(cls, renderer: ChatRenderer, messages: list[dict]) -> Skeleton:
        def parts(mark: tuple[str, str], upto: int | None, gen: bool) -> list[str | int] | None:
            fake = [{**m, "content": f"{mark[0]}{i}{mark[1]}"} for i, m in enumerate(messages)]
            try:
                text = renderer.render(fake if upto is None else fake[:upto], add_generation_prompt=gen)
            except DiagnosticError:
                return None
            return cls._split(text, mark, len(messages))

        def same(a, b) -> bool:
            return a is not None and b is not None and a == b

        full = parts(_MARK, None, False)
        spans = []
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            prefix, upto = parts(_MARK, i, True), parts(_MARK, i + 1, False)
            if not (same(prefix, parts(_MARK2, i, True)) and same(upto, parts(_MARK2, i + 1, False))):
                return cls([], [], ok=False)
            spans.append((prefix, upto))
        ok = same(full, parts(_MARK2, None, False)) and full is not None and \
            sorted(p for p in full if isinstance(p, int)) == list(range(len(messages)))
        if ok:  # prefix-consistent: each prefix and each upto render begins the full one
            for prefix, upto in spans:
                ok = ok and _starts(full, prefix) and _starts(full, upto)
        return cls(full or [], spans, ok=ok)

    def fill(self, contents: list[str]) -> tuple[str, list[tuple[int, int]]]:
        text = "".join(contents[p] if isinstance(p, int) else p for p in self.parts)
        spans = []
        for prefix, upto in self.span_lens:
            start = sum(len(contents[p]) if isinstance(p, int) else len(p) for p in prefix)
            end = sum(len(contents[p]) if isinstance(p, int) else len(p) for p in upto)
            if start > end:
                return None  # type: ignore[return-value]  # a case the jinja2 path handles
            spans.append((start, end))
        return text, spans


def _starts(full: list[str | int], part: list[str | int]) -> bool:
    """Whether `part` (literals and indexes) renders a prefix of `full` whatever the contents."""
    if len(part) > len(full) or part[:-1] != full[:len(part) - 1]:
        return False
    last, there = part[-1], full[len(part) - 1]
    return last == there if isinstance(last, int) or isinstance(there, int) else there.startswith(last)


def _search_span(full: str, content: str, before: list[tuple[int, int]], ends: tuple[str, ...]) -> tuple[int, int]:
    # a template that is not prefix-consistent: find the content after the previous turn, and take the
    # end-of-turn text right after it (if any) into the turn
    at = full.find(content.strip(), before[-1][1] if before else 0)
    if at < 0:
        raise DiagnosticError(error("FT621", "the chat template does not render the assistant content verbatim, "
                                             "so its turns cannot be located for label masking", None,
                                    "use a stdlib template: train { template = \"chatml\" }"))
    end = at + len(content.strip())
    rest = full[end:]
    gap = len(rest) - len(rest.lstrip(" \t"))
    for tok in ends:
        if tok and rest[gap:].startswith(tok):
            return at, end + gap + len(tok)
    return at, end


def chat_renderer(template: str | None, tokenizer, span: Span | None = None) -> ChatRenderer:
    """`template` None → the tokenizer's own chat_template; else a stdlib template name."""
    bos = getattr(tokenizer, "bos_token", None)
    eos = getattr(tokenizer, "eos_token", None)
    if template is None:
        source = getattr(tokenizer, "chat_template", None)
        if isinstance(source, dict):
            source = source.get("default")
        if not source:
            raise DiagnosticError(error("FT621", "the tokenizer has no chat_template", span,
                                        "name one: train { template = \"chatml\" } (or llama2, llama3, alpaca, "
                                        "mistral)"))
        return ChatRenderer(source, "tokenizer", bos, eos)
    return ChatRenderer(stdlib_template(template, span), template, bos, eos)


_DEFAULT_FIELD_TEMPLATES = {
    "instruction": "{{ instruction }}{% if input %}\n\n{{ input }}{% endif %}\n\n{{ output }}",
    "chat": "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}",
    "classification": "{{ text }}",
}


def field_template(source: str | None, fmt: str, span: Span | None = None):
    """A sandboxed jinja2 template over a row's fields (to_completion)."""
    text = source or _DEFAULT_FIELD_TEMPLATES.get(fmt, "{{ text }}")
    try:
        template = _compile(text)
    except TemplateError as e:
        raise DiagnosticError(error("FT621", f"to_completion template does not compile: {e}", span)) from None

    def render(fields: dict) -> str:
        try:
            return template.render(**fields)
        except TemplateError as e:
            raise DiagnosticError(error("FT621", f"to_completion template failed: {e}", span)) from None

    return render
