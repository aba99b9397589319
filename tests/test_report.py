"""Reports: after_training writes report.md/html; HTML parses (and opens in headless chromium when
present); recipe and data values never inject markup; `report show` and `report diff`."""

from __future__ import annotations

import json
import os
import shutil
from html.parser import HTMLParser

import pytest
from eval_support import CHATS, gate, trained_lora_ctx

from ftlang.backend.finish import after_training
from ftlang.cli import main
from ftlang.plan import EvalPlan, ExportPlan, GenerationSpec, RegistrySpec

EVIL = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


_VOID = {"meta", "br", "hr", "img", "input", "link", "rect", "line", "polyline", "circle"}


class _Collect(HTMLParser):
    """Collects tags, attributes and text, and checks that every element is closed in order."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.open: list[str] = []
        self.mismatches: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag not in _VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        if not self.open or self.open[-1] != tag:
            self.mismatches.append(f"</{tag}> while open: {self.open[-3:]}")
        else:
            self.open.pop()

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Collect:
    p = _Collect()
    p.feed(html)
    p.close()
    return p


def _run(tiny_llama_dir, project, seed=0, name="run", gates=("perplexity < 100000",), registry=True, force=False):
    chats = [*CHATS, [{"role": "user", "content": EVIL}, {"role": "assistant", "content": "ok " + EVIL}]]
    (project / "recipe.ft").write_text(f'# {EVIL}\nrecipe tiny {{\n  model = local("models/tiny-llama")\n}}\n')
    ev = EvalPlan(metrics=["loss", "perplexity", "rouge_l"], gates=[gate(g, 5 + i) for i, g in enumerate(gates)],
                  forgetting_on="general", generation=GenerationSpec(max_new_tokens=4), max_samples=3)
    ex = ExportPlan(registry=RegistrySpec(name="bot", dir="registry")) if registry else ExportPlan()
    ctx = trained_lora_ctx(tiny_llama_dir, project, eval_=ev, export=ex, seed=seed, chats=chats, run_name=name,
                           force=force)
    ctx.data.fingerprints[EVIL] = "ff" * 32
    ctx.data.stats[EVIL] = {"rows": 3, "quarantined": 1}
    return ctx, after_training(ctx)


def test_report_renders_and_cannot_be_injected(tiny_llama_dir, project, capsys):
    ctx, rc = _run(tiny_llama_dir, project)
    assert rc == 0
    err = capsys.readouterr().err
    assert "PASS" in err and "before" in err and "forgetting on general" in err
    html = (ctx.run_dir / "report.html").read_text()
    md = (ctx.run_dir / "report.md").read_text()
    parsed = _parse(html)
    assert parsed.mismatches == [] and parsed.open == []  # well-formed: every element closed in order
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert not any(k.startswith("on") for k, _ in parsed.attrs)
    assert "&lt;script&gt;" in html and EVIL in "".join(parsed.text)  # shown as text, verbatim
    assert "svg" in parsed.tags and "polyline" in parsed.tags
    for needle in (ctx.plan.sha256, "transformers", "peft", "bitsandbytes", "datasets", "quarantined",
                   "perplexity &lt; 100000", "forgetting", "overfitting", "tokens/s"):
        assert needle in html, needle
    assert ctx.plan.sha256 in md and "PASS" in md and "recipe tiny" in md
    report = json.loads((ctx.run_dir / "report.json").read_text())
    assert report["git"] is None or len(report["git"]["commit"]) == 40
    mem = report["memory"]
    assert (mem["peak_bytes"], mem["estimate_bytes"], mem["ratio"]) == (40_000_000, 50_000_000, 0.8)
    assert mem["estimate_over_measured"] == 1.25 and mem["seq_len_source"] == ctx.plan.resources.seq_len_source
    assert report["registry"]["version"] == "v1" and report["seed"] == 0
    assert report["checkpoint"]["select"] == "final" and "Checkpoint read by the gates and exported" in html
    assert [set(x) for x in report["samples"]] == [{"prompt", "base", "tuned", "reference"}] * len(report["samples"])
    assert report["samples"] and report["samples"][0]["base"] is not None
    assert set(report["metrics_after"]) == {"loss", "perplexity", "rouge_l"}
    assert report["metrics_before"]["perplexity"] > 0 and report["forgetting"] is not None


_PAGE_FACTS = """({
  charts: [...document.querySelectorAll("svg.chart")].map(svg => {
    const box = svg.getBoundingClientRect(), style = getComputedStyle(svg);
    return {label: svg.getAttribute("aria-label"), width: box.width, height: box.height,
            visible: style.display !== "none" && style.visibility !== "hidden" && box.bottom > 0,
            lines: svg.querySelectorAll("polyline").length, ticks: svg.querySelectorAll("text").length};
  }),
  tables: document.querySelectorAll("table").length,
  headers: [...document.querySelectorAll("th")].map(th => th.textContent),
  scripts: document.querySelectorAll("script").length,
  title: document.querySelector("h1").textContent,
})"""


def test_report_in_a_real_browser(tiny_llama_dir, project, tmp_path):
    """report.html in headless Chromium: no console errors, the loss and LR charts drawn at a real size,
    the tables there; the screenshot is kept in the test's tmp dir (pytest keeps the last runs)."""
    from browser import chromium, open_page

    if chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: scripts/setup.sh installs it (apt-get install chromium)")
        pytest.skip("no chromium (scripts/setup.sh installs it as root)")
    ctx, _ = _run(tiny_llama_dir, project, registry=False)
    page = open_page((ctx.run_dir / "report.html").as_uri(), _PAGE_FACTS, tmp_path / "report.png")
    facts = page["value"]
    assert page["errors"] == [], page["errors"]
    assert facts["scripts"] == 0 and facts["title"].startswith("Run report")
    loss = next(c for c in facts["charts"] if c["label"] == "training and validation loss")
    assert loss["visible"] and loss["width"] > 100 and loss["height"] > 100 and loss["lines"] >= 1
    assert loss["ticks"] >= 6  # tick labels on both axes, not just the ends
    assert any(c["label"] == "learning-rate schedule" and c["width"] > 0 and c["height"] > 0 for c in facts["charts"])
    assert facts["tables"] >= 5
    for header in ("metric", "gate", "base model", "tuned", "reference"):
        assert header in facts["headers"], header
    png = page["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_failed_gate_exits_3_and_registers_nothing(tiny_llama_dir, project):
    ctx, rc = _run(tiny_llama_dir, project, gates=("perplexity < 1.0",))
    assert rc == 3
    assert not (ctx.run_dir / "export").exists() and not (project / "registry").exists()
    gates = json.loads((ctx.run_dir / "gates.json").read_text())
    assert gates["passed"] is False and gates["gates"][0]["threshold"] == "< 1.0"
    report = json.loads((ctx.run_dir / "report.json").read_text())
    assert report["exit_code"] == 3 and report["export"] is None
    assert "nothing was exported" in (ctx.run_dir / "report.html").read_text()


def test_report_show_and_diff_explain_seed(tiny_llama_dir, project, capsys):
    a, _ = _run(tiny_llama_dir, project, seed=0, name="a", registry=False)
    b, _ = _run(tiny_llama_dir, project, seed=1, name="b", registry=False)
    capsys.readouterr()
    assert main(["report", "diff", str(a.run_dir), str(b.run_dir)]) == 0
    out = capsys.readouterr().out
    assert "train.seed: 0 -> 1" in out and "plan hash" in out
    assert "differ only in their seed" in out
    assert "metrics (after training)" in out and "perplexity" in out
    assert "data fingerprints" not in out and "versions and device" not in out
    (a.run_dir / "report.html").unlink()
    assert main(["report", "show", str(a.run_dir)]) == 0
    assert (a.run_dir / "report.html").is_file()
    assert str(a.run_dir / "report.html") in capsys.readouterr().out


def test_report_show_without_report_is_diagnostic(tmp_path):
    import importlib.util

    from ftlang.diagnostics import DiagnosticError
    from ftlang.report import diff

    with pytest.raises(DiagnosticError) as e:
        diff.load(tmp_path)
    assert e.value.diagnostics[0].code == "FT830"
    if importlib.util.find_spec("ftlang.render"):
        assert main(["report", "show", str(tmp_path)]) == 1


def test_templates_ship_as_package_data():
    from ftlang.report.build import TEMPLATES

    assert {p.name for p in TEMPLATES.iterdir()} >= {"report.md.j2", "report.html.j2"}
    assert shutil.which("git") is None or True  # git is optional: reports record None without it


def test_diff_unit_seed_via_param_and_data_change():
    from ftlang.report.diff import diff, format_diff

    base = {"plan": {"train": {"seed": 0, "lr": 1e-3}, "recipe": {"params": {"seed": 0}, "project_root": "/a"}},
            "plan_hash": "h0", "seed": 0, "data": {"fingerprints": {"d": "x"}}, "environment": {"torch": "2.1"},
            "metrics_after": {"perplexity": 10.0}}
    other = json.loads(json.dumps(base))
    other["plan"]["train"]["seed"] = 1
    other["plan"]["recipe"]["params"]["seed"] = 1
    other["plan"]["recipe"]["project_root"] = "/b"  # where, not what: never a difference
    other["plan_hash"], other["seed"] = "h1", 1
    other["metrics_after"]["perplexity"] = 11.0
    text = format_diff(diff(base, other), "A", "B")
    assert "train.seed: 0 -> 1" in text and "recipe.params.seed: 0 -> 1" in text and "project_root" not in text
    assert "perplexity: 10 -> 11  (+1, +10.00%)" in text and "differ only in their seed" in text
    other["data"]["fingerprints"]["d"] = "y"
    other["environment"]["torch"] = "2.2"
    text = format_diff(diff(base, other), "A", "B")
    assert "d: x -> y" in text and "torch: 2.1 -> 2.2" in text and "differ only" not in text
    same = format_diff(diff(base, base), "A", "B")
    assert "no differences" in same


def test_markdown_report_escapes_values(tiny_llama_dir, project):
    ctx, _ = _run(tiny_llama_dir, project, registry=False)
    md = (ctx.run_dir / "report.md").read_text()
    outside_fences = md.split("## Recipe")[0]
    # a tag-like `<` is backslash-escaped (renders as text, reads as text); a comparison stays as written
    assert "<script>" not in outside_fences.replace("\\<script>", "") and "\\<script>" in outside_fences
    assert "&lt;" not in outside_fences and "perplexity < 100000" in outside_fences
    assert "# <script>" in md  # the recipe source itself is shown verbatim, inside a fence


def test_fence_outgrows_backticks_in_text():
    from ftlang.report.build import md_fence

    assert md_fence("plain") == "````" and md_fence("a ````` b") == "``````"


def test_force_exports_and_records_it(tiny_llama_dir, project):
    ctx, rc = _run(tiny_llama_dir, project, gates=("perplexity < 1.0",), force=True)
    assert rc == 0 and (ctx.run_dir / "export" / "adapter" / "adapter_model.safetensors").is_file()
    manifest = json.loads((project / "registry" / "bot" / "v1" / "manifest.json").read_text())
    assert manifest["forced"] is True and manifest["gates"][0]["passed"] is False
    assert json.loads((ctx.run_dir / "gates.json").read_text())["forced"] is True
    assert "Exported with --force" in (ctx.run_dir / "export" / "adapter" / "README.md").read_text()
    assert "Run with --force" in (ctx.run_dir / "report.html").read_text()


def test_chart_ticks_are_round_and_span_the_data():
    from ftlang.report.charts import charts, nice_ticks

    assert nice_ticks(5.8698, 5.9889, enclose=True) == [5.85, 5.9, 5.95, 6.0]
    assert nice_ticks(1, 12, 8) == [2, 4, 6, 8, 10, 12]
    history = [{"step": s, "loss": 6 - s / 10, "lr": 1e-3 * (1 - s / 12)} for s in range(1, 13)]
    history += [{"step": s, "val_loss": 5.9 - s / 20} for s in (3, 6, 9, 12)]
    c = charts(history)
    loss = c["loss"]
    assert c["points"] == {"loss": 12, "val_loss": 4, "lr": 12}
    assert [s["key"] for s in loss["series"]] == ["loss", "val_loss"]  # one chart, one y scale
    ys = [float(y) for s in loss["series"] for p in s["points"].split() for y in [p.split(",")[1]]]
    assert min(ys) >= loss["top"] and max(ys) <= loss["bottom"]  # every point inside the plot box
    assert len(loss["y_ticks"]) >= 3 and len(loss["x_ticks"]) >= 4
    assert c["lr"]["x_min"] == loss["x_min"] and c["lr"]["x_max"] == loss["x_max"]  # LR beneath, same steps


def test_time_vs_estimate_compares_the_optimizer_steps():
    """resources.time covers the optimizer steps: the report measures them, not the whole stage (set-up,
    evaluations, saves); a run recorded before that timing existed falls back to the stage."""
    from ftlang.plan import MemoryEstimate, ResourcesPlan, TimeEstimate
    from ftlang.report.build import _time_vs_estimate

    mem = MemoryEstimate(weights_bytes=1, gradients_bytes=1, optimizer_bytes=1, activations_bytes=1,
                         logits_bytes=1, peak_bytes=5)
    base = ResourcesPlan(trainable_params=1, total_params=2, fits=True, memory=mem)
    tm = TimeEstimate(seconds=60.0, low_seconds=42.0, high_seconds=84.0, tokens=1, tokens_source="data",
                      flops=1.0, device_flops=1.0, mfu=0.5, devices=1, overhead_seconds=10.0)
    res = base.model_copy(update={"time": tm})
    row = _time_vs_estimate(res, {"train": 120.0, "train_steps": 75.0})
    assert row["measured_s"] == 75.0 and row["measured_as"] == "optimizer steps" and row["stage_s"] == 120.0
    assert row["estimate_over_measured"] == pytest.approx(0.8)
    old = _time_vs_estimate(res, {"train": 120.0})
    assert old["measured_s"] == 120.0 and old["measured_as"] == "training stage"
    assert _time_vs_estimate(base, {"train": 1.0}) is None
