"""The generation engine of `ftlang serve`: one worker thread that batches requests across clients.

Requests are queued by the HTTP side (any thread or the event loop) and picked up by the worker,
which takes every request waiting (up to `max_batch`, after a short `batch_wait_s` window) that can
share a forward pass, left-pads them and runs one `generate`. Requests for *different* adapters
share the pass through PEFT's mixed-adapter batches (`adapter_names=`, "__base__" for the plain
base) and ftlang's bottleneck rows (serve/bottleneck.py); adapters PEFT cannot mix (prefix, IA3,
DoRA, ...) are batched only with requests for the same adapter. Greedy and sampled requests never
share a batch, since `generate` takes one set of sampling settings.

A per-row stopping criterion runs after every step: it counts each row's tokens, streams the new
text to that request, and ends a row at EOS, at its own max_tokens, at a stop string, or when the
client went away (cancellation), so one long request does not hold the others' answers back and an
abandoned one stops costing compute. The worker alone touches the model and its tokenizer.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PEFT_BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length" | "cancelled"


@dataclass
class Request:
    """One generation. `emit(kind, value)` is called from the worker thread: ("delta", str) while
    streaming, then exactly once ("done", Completion) or ("error", Exception)."""

    model: str
    prompt_ids: list[int]
    max_tokens: int
    emit: Callable[[str, Any], None]
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    cancelled: bool = False
    ids: list[int] = field(default_factory=list)
    sent: str = ""  # text already streamed
    finish: str | None = None

    def cancel(self) -> None:
        self.cancelled = True  # a plain flag: read by the worker at the next step

    def sampling_key(self) -> tuple:
        return (float(self.temperature), float(self.top_p or 1.0)) if self.temperature else ("greedy",)


def _held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters might be the start of a stop string (not streamed yet)."""
    keep = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), keep, -1):
            if text.endswith(s[:k]):
                keep = k
                break
    return keep


class Engine:
    def __init__(self, pool: Any, max_batch: int = 16, batch_wait_s: float = 0.005):
        self.pool = pool
        self.max_batch = max(1, max_batch)
        self.batch_wait_s = batch_wait_s
        self.queue: deque[Request] = deque()
        self.cond = threading.Condition()
        self.stopped = False
        # counters for tests and the benchmark: batches run, most rows / distinct adapters in one
        self.stats = {"batches": 0, "requests": 0, "largest_batch": 0, "most_adapters": 0, "cancelled": 0}
        self.thread = threading.Thread(target=self._loop, name="ftlang-serve-engine", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------------ the HTTP side

    def submit(self, req: Request) -> None:
        with self.cond:
            self.queue.append(req)
            self.cond.notify()

    def close(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify()

    # ------------------------------------------------------------------ the worker

    def _take_batch(self) -> list[Request]:
        with self.cond:
            while not self.queue and not self.stopped:
                self.cond.wait()
            if self.stopped:
                return []
        if self.batch_wait_s:
            time.sleep(self.batch_wait_s)  # let requests sent together arrive together
        with self.cond:
            live = [r for r in self.queue if not r.cancelled]
            for r in self.queue:
                if r.cancelled:
                    self.stats["cancelled"] += 1
                    r.emit("done", Completion("", len(r.prompt_ids), 0, "cancelled"))
            self.queue.clear()
            if not live:
                return []
            first = live[0]
            batch, rest = [], []
            for r in live:
                fits = len(batch) < self.max_batch and r.sampling_key() == first.sampling_key() and \
                    self.pool.can_share(first.model, r.model)
                (batch if fits else rest).append(r)
            self.queue.extendleft(reversed(rest))  # the others keep their place in line
            return batch

    def _loop(self) -> None:
        while not self.stopped:
            batch = self._take_batch()
            if not batch:
                continue
            try:
                self._generate(batch)
            except Exception as e:  # noqa: BLE001 - the worker must outlive one failed batch
                for r in batch:
                    if r.finish is None:
                        r.emit("error", e)

    def _generate(self, batch: list[Request]) -> None:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        pool = self.pool
        self.stats["batches"] += 1
        self.stats["requests"] += len(batch)
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(batch))
        self.stats["most_adapters"] = max(self.stats["most_adapters"], len({r.model for r in batch}))
        width = max(len(r.prompt_ids) for r in batch)
        pad = pool.pad_id
        ids = torch.tensor([[pad] * (width - len(r.prompt_ids)) + r.prompt_ids for r in batch])
        mask = torch.tensor([[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in batch])
        first = batch[0]
        kwargs: dict[str, Any] = {"max_new_tokens": max(r.max_tokens for r in batch), "pad_token_id": pad}
        if first.temperature:  # absent or 0: greedy, so answers are reproducible
            kwargs.update(do_sample=True, temperature=float(first.temperature), top_p=float(first.top_p or 1.0))
        else:
            kwargs["do_sample"] = False
        if pool.eos_id is not None:
            kwargs["eos_token_id"] = pool.eos_id
        engine = self

        class Rows(StoppingCriteria):
            def __call__(self, input_ids: torch.Tensor, scores: Any, **kw: Any) -> torch.Tensor:
                last = input_ids[:, -1].tolist()
                return torch.tensor([engine._step(r, t) for r, t in zip(batch, last, strict=True)], device=input_ids.device)

        kwargs["stopping_criteria"] = StoppingCriteriaList([Rows()])
        with pool.selecting([r.model for r in batch]) as extra, torch.no_grad():
            pool.model.generate(input_ids=ids.to(pool.device), attention_mask=mask.to(pool.device),
                                **kwargs, **extra)
        for r in batch:
            if r.finish is None:  # generate stopped on its own (every row done)
                self._finish(r, "length")

    def _step(self, r: Request, token: int) -> bool:
        """Account one generated token of row r; True when the row is done."""
        if r.finish is not None:
            return True
        if r.cancelled:
            self.stats["cancelled"] += 1
            self._finish(r, "cancelled")
            return True
        r.ids.append(token)
        eos = token == self.pool.eos_id
        if r.stream or r.stop:
            text = self._text(r)
            for s in r.stop:
                if s in text:
                    self._finish(r, "stop", text[: text.index(s)])
                    return True
            if r.stream and not eos:
                ready = len(text) - _held_back(text, r.stop)
                if text[:ready].endswith("\ufffd"):  # half a UTF-8 character: wait for the rest
                    ready = len(text[:ready].rstrip("\ufffd"))
                if ready > len(r.sent):
                    r.emit("delta", text[len(r.sent): ready])
                    r.sent = text[:ready]
        if eos:
            self._finish(r, "stop")
            return True
        if len(r.ids) >= r.max_tokens:
            self._finish(r, "length")
            return True
        return False

    def _text(self, r: Request) -> str:
        return self.pool.worker_tokenizer.decode(r.ids, skip_special_tokens=True)

    def _finish(self, r: Request, reason: str, text: str | None = None) -> None:
        text = self._text(r) if text is None else text
        if r.stream and len(text) > len(r.sent) and reason != "cancelled":
            r.emit("delta", text[len(r.sent):])
            r.sent = text
        r.finish = reason
        r.emit("done", Completion(text, len(r.prompt_ids), len(r.ids), reason))
