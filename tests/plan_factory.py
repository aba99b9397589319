"""Build minimal valid Plans directly (no parser) for tests of the executor stages.

    plan = make_plan(project, data={"d": source("d", "data/d.jsonl", format="chat")})
    plan = make_plan(project, train={"packing": True, "max_seq_len": 64}, model_dir=tiny_llama_dir)

Overrides: `data` (dict name → SourcePlan or kwargs dict), `pipelines` (dict name → PipelinePlan or
(source, [steps]) tuple), `split` (SplitPlan | dict | None), and any top-level Plan block as a dict of
field overrides (`train`, `model`, `eval`, `export`, `hardware`, `method`, `recipe`, `resources`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftlang.plan import (
    DatasetsPlan,
    EvalPlan,
    ExportPlan,
    HardwarePlan,
    LoraMethod,
    MemoryEstimate,
    ModelPlan,
    ModelSource,
    OnError,
    PipelinePlan,
    Plan,
    RecipeInfo,
    ResourcesPlan,
    SourcePlan,
    SplitPlan,
    StepPlan,
    TrainPlan,
    make_step,
)


def loc(line: int = 1, file: str = "recipe.ft") -> dict:
    return {"file": file, "line": line, "column": 3, "end_line": line, "end_column": 20}


def source(name: str, path: str | None = None, *, kind: str = "jsonl", format: str = "instruction",
           line: int = 3, **kw: Any) -> SourcePlan:
    if "on_error" in kw and isinstance(kw["on_error"], dict):
        kw["on_error"] = OnError(**kw["on_error"])
    return SourcePlan(name=name, kind=kind, path=path, format=format, loc=loc(line), **kw)


def step(op: str, line: int = 5, **args: Any) -> StepPlan:
    return make_step(op, args, loc(line))


def _model(model_dir: Path | None, **kw: Any) -> ModelPlan:
    base = dict(
        card=None, source=ModelSource(kind="local", path=str(model_dir) if model_dir else "models/tiny"),
        family="llama", hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, vocab=400,
        modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        aliases={"attention": ["q_proj", "k_proj", "v_proj", "o_proj"]}, loc=loc(2),
    )
    base.update(kw)
    return ModelPlan(**base)


def make_plan(tmp_project: Path, *, data: dict | None = None, pipelines: dict | None = None,
              split: Any = "default", model_dir: Path | None = None, **overrides: Any) -> Plan:
    """A sealed, valid Plan rooted at tmp_project. Default: one instruction jsonl source `d`
    (data/d.jsonl), `dataset train = d`, split 10% seed 0, LoRA on q/v, tiny Llama shape."""
    data = data or {"d": source("d", "data/d.jsonl")}
    sources = {n: (s if isinstance(s, SourcePlan) else source(n, **s)) for n, s in data.items()}
    if pipelines is None:
        pipelines = {"train": (next(iter(sources)), [])}
    pipes = {}
    for n, p in pipelines.items():
        if isinstance(p, PipelinePlan):
            pipes[n] = p
        else:
            src, steps = p
            pipes[n] = PipelinePlan(name=n, source=src, steps=list(steps), loc=loc(4))
    if split == "default":
        split = None if "validation" in pipes else SplitPlan(dataset="train", validation=0.1, seed=0, loc=loc(6))
    elif isinstance(split, dict):
        split = SplitPlan(**{"dataset": "train", **split})
    blocks: dict[str, Any] = {
        "recipe": RecipeInfo(name="test", file="recipe.ft", project_root=str(tmp_project)),
        "model": _model(model_dir, **overrides.pop("model", {})),
        "data": sources,
        "datasets": DatasetsPlan(pipelines=pipes, split=split),
        "method": LoraMethod(targets=["q_proj", "v_proj"], **overrides.pop("method", {})),
        "train": TrainPlan(**overrides.pop("train", {})),
        "hardware": HardwarePlan(**overrides.pop("hardware", {})),
        "eval": EvalPlan(**overrides.pop("eval", {})),
        "export": ExportPlan(**overrides.pop("export", {})),
        "resources": ResourcesPlan(
            trainable_params=1000, total_params=100000, fits=True,
            memory=MemoryEstimate(weights_bytes=1, gradients_bytes=1, optimizer_bytes=1, activations_bytes=1,
                                  logits_bytes=1, peak_bytes=5), **overrides.pop("resources", {})),
    }
    if "recipe" in overrides:
        blocks["recipe"] = blocks["recipe"].model_copy(update=overrides.pop("recipe"))
    if overrides:
        raise TypeError(f"unknown plan overrides: {sorted(overrides)}")
    return Plan(**blocks).seal()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
