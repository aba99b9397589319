"""Plans and tokenized data for the backend tests, built directly from the pydantic models.

The executor reads only the plan, so these tests build plans by hand (no recipe, no data stage):
`tiny_plan(model_dir, method)` for the tiny Llama / BERT, and `TinyPrepared` standing in for
`ftlang.data.prepare.Prepared` (lists of tokenized rows and a padding collator).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftlang.plan import (
    DatasetsPlan,
    EvalPlan,
    ExportPlan,
    HardwarePlan,
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

LLAMA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
BERT_MODULES = ["query", "key", "value", "dense"]


def tiny_plan(model_dir: Path, method: Any, *, root: Path | None = None, classify: list[str] | None = None,
              train: dict | None = None, eval: dict | None = None, hardware: dict | None = None,
              source: ModelSource | None = None, name: str = "tiny") -> Plan:
    root = root or model_dir.parent
    rel = Path(model_dir).resolve().relative_to(Path(root).resolve()).as_posix() if source is None else ""
    bert = classify is not None
    model = ModelPlan(
        card=None, source=source or ModelSource(kind="local", path=rel),
        arch="encoder" if bert else "decoder", family="bert" if bert else "llama",
        hidden=64, layers=2, heads=4, kv_heads=4 if bert else 2, intermediate=128, vocab=400,
        modules=BERT_MODULES if bert else LLAMA_MODULES,
        task=TaskSpec(kind="classify", labels=classify) if bert else TaskSpec(),
    )
    tr = {"lr": 1e-2, "epochs": None, "max_steps": 6, "batch": 4, "logging_steps": 1, "seed": 0,
          "save_total_limit": 2}
    tr.update(train or {})
    return Plan(
        recipe=RecipeInfo(name=name, file="tiny.ft", project_root=str(root)),
        model=model,
        data={"d": SourcePlan(name="d", kind="jsonl", path="d.jsonl", format="completion")},
        datasets=DatasetsPlan(pipelines={"train": PipelinePlan(name="train", source="d")}),
        method=method,
        train=TrainPlan(**tr),
        hardware=HardwarePlan(**(hardware or {})),
        eval=EvalPlan(**({"every": "end"} | (eval or {}))),
        export=ExportPlan(),
        resources=ResourcesPlan(
            trainable_params=1000, total_params=100000, fits=True,
            memory=MemoryEstimate(weights_bytes=1 << 20, gradients_bytes=1 << 16, optimizer_bytes=1 << 17,
                                  activations_bytes=1 << 18, logits_bytes=1 << 15, peak_bytes=3 << 20),
        ),
    ).seal()


_TEXTS = [
    "How do I reset my password? Open settings and choose reset.",
    "What is the capital of France? Paris is the capital of France.",
    "The quick brown fox jumps over the lazy dog.",
    "billing refund invoice account login error crash slow feature request shipping",
    "You are a helpful assistant. Answer the question briefly.",
    "system user assistant question answer context instruction output input text label",
    "Paris is the capital of France. The quick brown fox.",
    "Open settings and choose reset. billing refund invoice.",
]


@dataclass
class TinyPrepared:
    train: list[dict]
    validation: list[dict] = field(default_factory=list)
    pad_id: int = 0
    classify: bool = False
    stats: dict = field(default_factory=dict)
    fingerprints: dict = field(default_factory=dict)
    cache_key: str = "test"

    def collator(self):
        import torch

        pad_id, classify = self.pad_id, self.classify

        def collate(rows: list[dict]) -> dict:
            n = max(len(r["input_ids"]) for r in rows)
            ids = torch.full((len(rows), n), pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), n), dtype=torch.long)
            labels = torch.full((len(rows), n), -100, dtype=torch.long)
            for i, r in enumerate(rows):
                k = len(r["input_ids"])
                ids[i, :k] = torch.tensor(r["input_ids"])
                mask[i, :k] = 1
                if not classify:
                    labels[i, :k] = torch.tensor(r["labels"])
            out = {"input_ids": ids, "attention_mask": mask}
            out["labels"] = torch.tensor([r["labels"] for r in rows]) if classify else labels
            return out

        return collate


def lm_data(tokenizer, n_train: int = 16, n_val: int = 4) -> TinyPrepared:
    rows = []
    for i in range(n_train + n_val):
        ids = tokenizer(_TEXTS[i % len(_TEXTS)])["input_ids"][:48]
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(ids)})
    return TinyPrepared(rows[:n_train], rows[n_train:], pad_id=tokenizer.pad_token_id)


def cls_data(tokenizer, n_train: int = 16, n_val: int = 4, labels: int = 3) -> TinyPrepared:
    rows = []
    for i in range(n_train + n_val):
        enc = tokenizer(_TEXTS[i % len(_TEXTS)], truncation=True, max_length=48)
        rows.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                     "labels": (i % len(_TEXTS)) % labels})
    return TinyPrepared(rows[:n_train], rows[n_train:], pad_id=tokenizer.pad_token_id or 0, classify=True)


_QA = [("How do I reset my password?", "Open settings and choose reset."),
       ("What is the capital of France?", "Paris is the capital of France."),
       ("Where is my invoice?", "Billing shows every invoice."),
       ("The app is slow.", "Clear the cache and restart.")]


def chat_project(root: Path, model_dir: Path, method: Any, *, rows: int = 24, name: str = "tiny_lora",
                 train: dict | None = None, hardware: dict | None = None, eval: dict | None = None) -> Path:
    """A project (models/tiny copied in, data/chat.jsonl, plan.json) for `ftlang run --plan`; returns plan.json."""
    import json
    import shutil

    from ftlang.plan import SplitPlan

    root.mkdir(parents=True, exist_ok=True)
    (root / ".git").mkdir(exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    target = root / "models" / "tiny"
    if not target.exists():
        shutil.copytree(model_dir, target)
    with open(root / "data" / "chat.jsonl", "w") as f:
        for i in range(rows):
            q, a = _QA[i % len(_QA)]
            f.write(json.dumps({"messages": [{"role": "user", "content": q},
                                             {"role": "assistant", "content": a}]}) + "\n")
    plan = tiny_plan(target, method, root=root, name=name, train=train, hardware={"device": "cpu", **(hardware or {})},
                     eval=eval)
    plan = plan.model_copy(update={
        "data": {"d": SourcePlan(name="d", kind="chat_jsonl", path="data/chat.jsonl", format="chat")},
        "datasets": DatasetsPlan(pipelines={"train": PipelinePlan(name="train", source="d")},
                                 split=SplitPlan(dataset="train", validation=0.1)),
    }).seal()
    path = root / "plan.json"
    path.write_text(plan.to_json())
    return path
