"""Export: the trained adapter (PEFT format, safetensors) and, with `merge = true`, a merged HF model.

Layout under the run dir (built in a temp dir, renamed into place):
    export/adapter/   adapter_config.json, adapter_model.safetensors, tokenizer, README.md (PEFT methods)
    export/model/     full fine-tunes: the whole model, tokenizer, README.md
    export/merged/    merge = true: base (loaded unquantized) + adapter via merge_and_unload, tokenizer, README.md
    export/check.json the post-export check: merged weights differ from the base, merged logits match the
                      adapter's, a short greedy generation ends within max_new_tokens.

Merging never touches 4-bit weights: the base is reloaded unquantized (ctx.load_base) and the saved
adapter is loaded onto it. Codes: FT811 merge refused for the method, FT812 merge into a quantized
base, FT813 the post-export check failed, FT814 export failed to write.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftlang.backend.context import RunContext
from ftlang.backend.load import base_loader
from ftlang.diagnostics import DiagnosticError, error
from ftlang.plan import Plan
from ftlang.source import loc_span

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MERGEABLE = ("lora", "qlora", "ia3")


@dataclass
class ExportResult:
    dir: Path
    adapter_dir: Path | None = None
    model_dir: Path | None = None
    merged_dir: Path | None = None
    checks: dict[str, Any] = field(default_factory=dict)

    def artifacts(self) -> dict[str, Path]:
        """Registry artifact name → path."""
        out: dict[str, Path] = {}
        for name, p in (("adapter", self.adapter_dir), ("model", self.model_dir), ("merged", self.merged_dir)):
            if p is not None:
                out[name] = p
        check = self.dir / "check.json"
        if check.is_file():
            out["check.json"] = check
        return out


# ---------------------------------------------------------------------------- model card


def _yaml_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)  # NaN becomes NaN, which YAML reads as a string: acceptable for a card
    return json.dumps(str(v), ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


def _yaml(data: Any, indent: int = 0) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(data, dict):
        for k, v in data.items():
            key = str(k) if _PLAIN_KEY.match(str(k)) else _yaml_scalar(str(k))
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{key}:")
                lines.extend(_yaml(v, indent + 1))
            else:
                lines.append(f"{pad}{key}: {_yaml_scalar(v) if not isinstance(v, (dict, list)) else ('{}' if isinstance(v, dict) else '[]')}")
    elif isinstance(data, list):
        for v in data:
            if isinstance(v, (dict, list)):
                sub = _yaml(v, indent + 1)
                lines.append(f"{pad}- {sub[0].strip()}")
                lines.extend(sub[1:])
            else:
                lines.append(f"{pad}- {_yaml_scalar(v)}")
    return lines


def base_name(plan: Plan) -> str:
    s = plan.model.source
    if s.kind == "gguf":
        return f"{s.package or s.path}/{s.gguf_file or ''}".strip("/")
    return s.path


def model_card(plan: Plan, kind: str, metrics: dict[str, float], gates: list[dict],
               data_hashes: dict[str, str], forced: bool = False) -> str:
    meta = {
        "base_model": base_name(plan),
        "library_name": "peft" if kind == "adapter" else "transformers",
        "tags": ["ftlang", plan.method.kind, plan.model.task.kind],
        "ftlang": {
            "recipe": plan.recipe.name, "plan_hash": plan.sha256, "method": plan.method.kind,
            "artifact": kind, "data_hashes": data_hashes, "metrics": metrics,
            "gates": [{"gate": g.get("text"), "passed": g.get("passed")} for g in gates],
            "forced": forced,
        },
    }
    rows = "\n".join(f"| {k} | {v:.4g} |" for k, v in metrics.items()) or "| (none) | |"
    gate_rows = "\n".join(f"| `{g.get('text')}` | {'PASS' if g.get('passed') else 'FAIL'} |" for g in gates) or "| (none) | |"
    what = {"adapter": f"a {plan.method.kind} adapter (PEFT format)", "merged": "the base with the adapter merged in",
            "model": "a full fine-tune"}[kind]
    return (
        "---\n" + "\n".join(_yaml(meta)) + "\n---\n\n"
        f"# {plan.recipe.name}\n\n"
        f"{what.capitalize()} of `{base_name(plan)}`, built by ftlang from recipe `{plan.recipe.file}` "
        f"(plan `{plan.short_hash}`).\n\n"
        f"| metric | value |\n|---|---|\n{rows}\n\n| gate | result |\n|---|---|\n{gate_rows}\n"
        + ("\n**Exported with --force although a gate failed.**\n" if forced else "")
    )


# ---------------------------------------------------------------------------- loading


def _is_quantized(model: Any) -> bool:
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        return True
    return any(type(m).__name__ in ("Linear4bit", "Linear8bitLt", "Params4bit") for m in model.modules())


def save_model(model: Any, out: Path) -> None:
    """save_pretrained as safetensors; a GGUF-loaded model refuses it, so rebuild from its config."""
    try:
        model.save_pretrained(str(out), safe_serialization=True)
    except Exception:  # noqa: BLE001 - transformers raises several types here; the retry is the same
        import torch

        shutil.rmtree(out, ignore_errors=True)
        with torch.device("cpu"):
            fresh = type(model)(model.config)
        fresh.load_state_dict(model.state_dict(), strict=False)
        fresh.save_pretrained(str(out), safe_serialization=True)


# ---------------------------------------------------------------------------- checks


def _probe_inputs(tokenizer: Any) -> tuple[Any, Any]:
    from ftlang.backend.metrics import render_prompt

    if getattr(tokenizer, "chat_template", None):
        text = render_prompt(tokenizer, [{"role": "user", "content": "Hello, how are you?"}])
    else:
        text = "Hello, how are you?"
    enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    return enc["input_ids"], enc["attention_mask"]


def _snapshot(model: Any, leaf_names: list[str]) -> dict[str, Any]:
    """Copies of the base weights an adapter merge changes (only those: full copies are costly)."""
    out = {}
    for name, p in model.named_parameters():
        parts = name.split(".")
        if len(parts) >= 2 and parts[-1] == "weight" and parts[-2] in leaf_names:
            out[name] = p.detach().to("cpu", copy=True).float()
    return out


def _targets(plan: Plan) -> list[str]:
    m = plan.method
    names = list(getattr(m, "targets", []) or [])
    names += list(getattr(m, "feedforward", []) or [])
    return names


def _weights_differ(snapshot: dict[str, Any], merged: Any) -> tuple[bool, float]:
    params = dict(merged.named_parameters())
    worst = 0.0
    for name, before in snapshot.items():
        after = params.get(name)
        if after is None:
            continue
        worst = max(worst, float((after.detach().float().cpu() - before).abs().max()))
    return worst > 0.0, worst


def generation_check(model: Any, tokenizer: Any, max_new_tokens: int) -> dict[str, Any]:
    import torch

    from ftlang.backend.metrics import model_device

    ids, mask = (t.to(model_device(model)) for t in _probe_inputs(tokenizer))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.eval()
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=pad)
    new = int(out.shape[1] - ids.shape[1])
    return {"max_new_tokens": max_new_tokens, "new_tokens": new, "ok": 0 <= new <= max_new_tokens,
            "text": tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)}


# ---------------------------------------------------------------------------- export


def _atomic_dir(final: Path) -> Path:
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    return tmp


def export(ctx: RunContext, metrics: dict[str, float], gates: list[dict], forced: bool = False) -> ExportResult:
    """Write export/ for the run in ctx (a RunContext); raises DiagnosticError on a refused merge."""
    plan: Plan = ctx.plan
    kind = plan.method.kind
    if plan.export.merge and kind not in MERGEABLE:
        raise DiagnosticError(error(
            "FT811", f"merging a {kind} method is not possible: it adds tokens or layers, not weight deltas",
            loc_span(plan.export.loc), help="set `merge = false` and ship the adapter (lora, qlora and ia3 merge)",
        ))
    data_hashes = dict(ctx.data.fingerprints or {})
    final = Path(ctx.run_dir) / "export"
    tmp = _atomic_dir(final)
    result = ExportResult(dir=final)
    try:
        model = ctx.model
        if kind == "full":
            save_model(model, tmp / "model")
            ctx.tokenizer.save_pretrained(str(tmp / "model"))
            (tmp / "model" / "README.md").write_text(model_card(plan, "model", metrics, gates, data_hashes, forced), "utf-8")
            result.model_dir = final / "model"
        else:
            save_adapter(model, tmp / "adapter")
            ctx.tokenizer.save_pretrained(str(tmp / "adapter"))
            (tmp / "adapter" / "README.md").write_text(model_card(plan, "adapter", metrics, gates, data_hashes, forced), "utf-8")
            result.adapter_dir = final / "adapter"
        if plan.export.merge:
            result.checks = merge(ctx, tmp / "adapter", tmp / "merged")
            (tmp / "merged" / "README.md").write_text(model_card(plan, "merged", metrics, gates, data_hashes, forced), "utf-8")
            result.merged_dir = final / "merged"
            (tmp / "check.json").write_text(json.dumps(result.checks, indent=2) + "\n", "utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DiagnosticError(error("FT814", f"could not write the export to {final}: {e}", loc_span(plan.export.loc),
                                    help="check free disk space and permissions of the run directory")) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def save_adapter(model: Any, out: Path) -> None:
    """PEFT models save their own format; others (ftlang's bottleneck adapters) save trainable weights."""
    if hasattr(model, "peft_config") and hasattr(model, "save_pretrained"):
        model.save_pretrained(str(out), safe_serialization=True)
        return
    if hasattr(model, "ftlang_adapter_config"):  # ftlang's own bottleneck adapters
        from ftlang.backend.adapters import save_adapter as save_bottleneck

        save_bottleneck(model, out)
        return
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(state, str(out / "adapter_model.safetensors"))


def merge(ctx: RunContext, adapter_dir: Path, out: Path) -> dict[str, Any]:
    """Load the saved adapter onto an unquantized base, merge_and_unload, save, then check the result."""
    import torch
    from peft import PeftModel

    plan: Plan = ctx.plan
    base = (ctx.load_base or base_loader(plan))()  # fresh, unquantized
    if _is_quantized(base):
        raise DiagnosticError(error(
            "FT812", "refusing to merge into a quantized (4-bit/8-bit) base: the merged weights would be rounded",
            loc_span(plan.export.loc), help="the run's load_base must return the base unquantized (fp32/bf16)",
        ))
    snapshot = _snapshot(base, _targets(plan))
    peft_model = PeftModel.from_pretrained(base, str(adapter_dir))
    peft_model.eval()
    is_lm = plan.model.task.kind != "classify"
    if is_lm:
        ids, mask = _probe_inputs(ctx.tokenizer)
    else:
        enc = ctx.tokenizer("a short probe sentence", return_tensors="pt")
        ids, mask = enc["input_ids"], enc["attention_mask"]
    from ftlang.backend.metrics import model_device

    with torch.no_grad():
        dev = model_device(peft_model)
        adapter_logits = peft_model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits.float().cpu()
    merged = peft_model.merge_and_unload()
    save_model(merged, out)
    ctx.tokenizer.save_pretrained(str(out))
    # check the artifact on disk, not the object in memory
    reloaded = type(merged).from_pretrained(str(out), dtype=torch.float32)
    reloaded.eval()
    differ, max_delta = _weights_differ(snapshot, reloaded)
    with torch.no_grad():
        merged_logits = reloaded(input_ids=ids, attention_mask=mask).logits.float().cpu()
    logits_gap = float((merged_logits - adapter_logits).abs().max())
    checks: dict[str, Any] = {
        "weights_differ_from_base": differ, "max_weight_delta": max_delta,
        "checked_tensors": len(snapshot), "merged_vs_adapter_max_logit_diff": logits_gap,
    }
    if is_lm:
        n = max(1, min(16, plan.eval.generation.max_new_tokens))
        checks["generation"] = generation_check(reloaded, ctx.tokenizer, n)
    problems = []
    if not differ:
        problems.append("the merged weights equal the base: the adapter was not merged (or is all zeros)")
    if logits_gap > 1e-2 * max(1.0, float(adapter_logits.abs().max())):
        problems.append(f"the merged model's logits differ from the adapter model's by {logits_gap:.3g}")
    if is_lm and not checks["generation"]["ok"]:
        problems.append("a greedy generation did not end within max_new_tokens")
    checks["ok"] = not problems
    if problems:
        raise DiagnosticError(error("FT813", "post-export check failed: " + "; ".join(problems),
                                    loc_span(plan.export.loc), help="nothing was exported; retrain (an all-zero adapter merges to the base)"))
    return checks
