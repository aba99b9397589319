"""Chat templates: the tokenizer's own or a stdlib jinja2 file, rendered in a sandbox, with the character
spans of the assistant turns (found by rendering prefixes, so any prefix-consistent template works).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ftlang.diagnostics import DiagnosticError, error
from ftlang.resources import stdlib_dir
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
    return path.read_text(encoding="utf-8")


@dataclass
class ChatRenderer:
    source: str  # the jinja2 text
    name: str  # "tokenizer" or the stdlib name
    bos_token: str | None = None
    eos_token: str | None = None

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
