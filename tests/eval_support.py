"""Helpers for the eval/gates/export/registry/report tests: a minimal valid Plan and a Prepared stand-in.

The stand-in has the attributes the eval stage reads from ftlang.data.prepare.Prepared
(validation, validation_rows, extra, stats, fingerprints), so these tests do not depend on the
data stage's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftlang.plan import (
    DatasetsPlan,
    EvalPlan,
    ExportPlan,
    GatePlan,
    HardwarePlan,
    Loc,
    LoraMethod,
    MemoryEstimate,
    ModelPlan,
    ModelSource,
    PipelinePlan,
    Plan,
    RecipeInfo,
    ResourcesPlan,
    SourcePlan,
    TaskSpec,
    TrainPlan,
)

CHATS = [
    [{"role": "user", "content": "How do I reset my password?"},
     {"role": "assistant", "content": "Open settings and choose reset."}],
    [{"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "Paris is the capital of France."}],
    [{"role": "system", "content": "You are a helpful assistant."},
     {"role": "user", "content": "Answer the question briefly."},
     {"role": "assistant", "content": "The quick brown fox."}],
    [{"role": "user", "content": "billing refund invoice"},
     {"role": "assistant", "content": "account login error"}],
]


def loc(line: int, file: str = "recipe.ft") -> Loc:
    return Loc(file=file, line=line, column=3, end_line=line, end_column=30)


def gate(text: str, line: int = 10) -> GatePlan:
    """A GatePlan from text, via the real parser when it exists, else a tiny hand parser for tests."""
    from ftlang.plan import BoolExpr, CompareExpr, ConstExpr, NameExpr, NotExpr

    def atom(tok: str):
        try:
            return ConstExpr(value=int(tok))
        except ValueError:
            pass
        try:
            return ConstExpr(value=float(tok))
        except ValueError:
            pass
        if tok in ("true", "false"):
            return ConstExpr(value=tok == "true")
        return NameExpr(name=tok)

    def compare(part: str):
        toks = part.split()
        if toks[0] == "not":
            return NotExpr(operand=compare(" ".join(toks[1:])))
        if len(toks) == 1:
            return atom(toks[0])
        left, op, right = toks
        return CompareExpr(op=op, left=atom(left), right=atom(right))

    parts = text.split(" and ")
    expr = compare(parts[0])
    for p in parts[1:]:
        expr = BoolExpr(kind="and", left=expr, right=compare(p))
    return GatePlan(expr=expr, text=text, loc=loc(line))


def make_plan(project: Path, *, model_dir: str = "models/tiny-llama", task: str = "causal_lm",
              labels: list[str] | None = None, method: Any = None, eval_: EvalPlan | None = None,
              export: ExportPlan | None = None, seed: int = 0, name: str = "tiny") -> Plan:
    recipe = project / "recipe.ft"
    if not recipe.exists():
        recipe.write_text(f"recipe {name} {{\n  model = local(\"{model_dir}\")\n}}\n", encoding="utf-8")
    encoder = task == "classify"
    return Plan(
        recipe=RecipeInfo(name=name, file="recipe.ft", project_root=str(project)),
        model=ModelPlan(
            card=None, source=ModelSource(kind="local", path=model_dir), arch="encoder" if encoder else "decoder",
            family="bert" if encoder else "llama", hidden=64, layers=2, heads=4, kv_heads=4 if encoder else 2,
            intermediate=128, vocab=400, modules=["query", "value"] if encoder else ["q_proj", "k_proj", "v_proj", "o_proj"],
            task=TaskSpec(kind=task, labels=labels or []),
        ),
        data={"d": SourcePlan(name="d", kind="chat_jsonl", path="data/chat.jsonl", format="chat")},
        datasets=DatasetsPlan(pipelines={"train": PipelinePlan(name="train", source="d")}),
        method=method or LoraMethod(r=4, alpha=8, targets=["query", "value"] if encoder else ["q_proj", "v_proj"]),
        train=TrainPlan(seed=seed, max_steps=3, epochs=None, batch=2),
        hardware=HardwarePlan(device="cpu"),
        eval=eval_ or EvalPlan(),
        export=export or ExportPlan(),
        resources=ResourcesPlan(
            trainable_params=1000, total_params=100000, fits=True,
            memory=MemoryEstimate(weights_bytes=1, gradients_bytes=1, optimizer_bytes=1, activations_bytes=1,
                                  logits_bytes=1, peak_bytes=50_000_000),
        ),
    ).seal()


@dataclass
class FakePrepared:
    validation: list[dict]
    validation_rows: list[dict]
    extra: dict[str, list[dict]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    train: list[dict] = field(default_factory=list)


def tokenize_chats(tokenizer: Any, chats: list[list[dict]]) -> list[dict]:
    out = []
    for messages in chats:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        out.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(ids)})
    return out


def chat_prepared(tokenizer: Any, chats: list[list[dict]] | None = None, general: bool = True) -> FakePrepared:
    chats = chats or CHATS
    tok = tokenize_chats(tokenizer, chats)
    extra = {"general": tokenize_chats(tokenizer, list(reversed(chats)))} if general else {}
    return FakePrepared(
        validation=tok, validation_rows=[{"messages": m} for m in chats], extra=extra, train=tok,
        stats={"train": {"rows": len(chats), "quarantined": 1}, "validation": {"rows": len(chats), "quarantined": 0}},
        fingerprints={"d": "ab" * 32, "train": "cd" * 32},
    )


def trained_lora_ctx(tiny_llama_dir: Path, project: Path, *, eval_: EvalPlan | None = None,
                     export: ExportPlan | None = None, steps: int = 4, seed: int = 0, chats=None,
                     run_name: str = "run", force: bool = False):
    """A RunContext after a few real LoRA steps on the tiny Llama (a hand loop: no Trainer needed)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftlang.backend.context import RunContext

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    plan = make_plan(project, eval_=eval_, export=export, seed=seed)
    prepared = chat_prepared(tok, chats)
    ctx = RunContext(plan=plan, run_dir=project / "runs" / run_name, model=model, tokenizer=tok, data=prepared,
                     load_base=lambda: AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)), force=force)
    ctx.run_dir.mkdir(parents=True)
    (ctx.run_dir / "plan.json").write_text(plan.to_json())
    from ftlang.backend.finish import before_training

    before_training(ctx)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    model.train()
    for step in range(1, steps + 1):
        row = prepared.train[step % len(prepared.train)]
        out = model(input_ids=torch.tensor([row["input_ids"]]), labels=torch.tensor([row["labels"]]))
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        ctx.history.append({"step": step, "epoch": step / steps, "loss": out.loss.item(), "tokens_per_s": 100.0,
                            "lr": 5e-2 * (1 - (step - 1) / steps)})  # the rows' shape in metrics.jsonl
        if step % 2 == 0:
            ctx.history.append({"step": step, "epoch": step / steps, "val_loss": out.loss.item() + 0.1})
    ctx.timings.update(train=1.0, load=0.5)
    ctx.peak_memory_bytes = 40_000_000
    return ctx
