"""`ftlang lsp` end to end: a real client (pytest-lsp) drives the server over stdio on a two-file project."""

from __future__ import annotations

import asyncio
import re

import pytest

pytest.importorskip("pygls")
pytest_lsp = pytest.importorskip("pytest_lsp")

from lsp_support import (  # noqa: E402
    CHILD,
    COMMON,
    change_doc,
    config,
    doc_id,
    initialize,
    make_workspace,
    open_doc,
    position,
    until_published,
    uri,
)
from lsprotocol import types as T  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(config=config(), scope="module")
async def client(lsp_client: pytest_lsp.LanguageClient, request):
    root = make_workspace(request.getfixturevalue("tmp_path_factory").mktemp("ws"))
    lsp_client.root = root
    lsp_client.init_result = await initialize(lsp_client, root)
    for name in ("common.ft", "child.ft"):  # every test starts from both files open
        await open_doc(lsp_client, root / name)
    yield
    await lsp_client.shutdown_session()


def _by_code(diags, code):
    return [d for d in diags if d.code == code]


async def test_capabilities_and_clean_open(client):
    caps = client.init_result.capabilities
    assert caps.hover_provider and caps.definition_provider and caps.references_provider
    assert caps.document_formatting_provider and caps.code_action_provider and caps.inlay_hint_provider
    assert caps.document_symbol_provider and caps.completion_provider
    assert await open_doc(client, client.root / "common.ft") == []
    assert await open_doc(client, client.root / "child.ft") == []


async def test_diagnostic_shape(client):
    path = client.root / "child.ft"
    text = CHILD.replace("epochs = epochs", "epocs = epochs")
    diags = await change_doc(client, path, text, 2)
    (d,) = _by_code(diags, "FT101")
    assert d.severity == T.DiagnosticSeverity.Error and d.source == "ftlang"
    assert d.range == T.Range(start=position(text, "epocs"), end=position(text, "epocs", 5))
    helps = [r.message for r in d.related_information or ()]
    assert any(h.startswith("help: ") and "epochs" in h for h in helps)
    assert await change_doc(client, path, CHILD, 3) == []


async def test_syntax_errors_then_recovery(client):
    path = client.root / "child.ft"
    broken = CHILD.replace("train {", "train { lr = = ")
    diags = await change_doc(client, path, broken, 4)
    assert diags and all(re.fullmatch(r"FT0\d\d", d.code) for d in diags)
    # still answering while broken, then clean again
    syms = await client.text_document_document_symbol_async(T.DocumentSymbolParams(text_document=doc_id(path)))
    assert [s.name for s in syms] == ["import common.ft", "child"]
    assert await change_doc(client, path, CHILD, 5) == []
    hover = await client.text_document_hover_async(T.HoverParams(
        text_document=doc_id(path), position=position(CHILD, "lr =")))
    assert "learning rate" in hover.contents.value


async def _until(client, doc_uri: str, pred, timeout: float = 30) -> list[T.Diagnostic]:
    """Wait until the latest diagnostics of doc_uri satisfy pred."""
    while not (doc_uri in client.diagnostics and pred(list(client.diagnostics[doc_uri]))):
        await asyncio.wait_for(client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), timeout)
    return list(client.diagnostics[doc_uri])


async def test_importers_are_rechecked_with_the_buffer(client):
    common, child = client.root / "common.ft", client.root / "child.ft"
    without = COMMON.replace("param epochs = 2\n", "")
    await change_doc(client, common, without, 2)
    # the importer is re-checked against the unsaved buffer: child.ft's `epochs = epochs` is undefined now
    await _until(client, uri(child), lambda ds: _by_code(ds, "FT201"))
    await change_doc(client, common, COMMON, 3)
    await _until(client, uri(child), lambda ds: ds == [])


async def test_data_rows_are_checked_on_save_only(client):
    common = client.root / "common.ft"
    data = client.root / "data" / "train.jsonl"
    good = data.read_text(encoding="utf-8")
    data.write_text(good + '{"q": "x", "a": \n', encoding="utf-8")
    try:
        assert await change_doc(client, common, COMMON + "\n", 4) == []
        save = T.DidSaveTextDocumentParams(text_document=doc_id(common))
        diags = await until_published(client, uri(common), lambda: client.text_document_did_save(save))
        (d,) = _by_code(diags, "FT601")
        assert d.range.start == position(COMMON, "facts")  # shown at the data declaration ...
        assert d.related_information[0].location.uri == uri(data)  # ... pointing into the data file
        assert d.related_information[0].location.range.start.line == 1200
    finally:
        data.write_text(good, encoding="utf-8")
    assert await change_doc(client, common, COMMON, 5) == []


async def _hover(client, path, text, needle, delta=0, nth=0) -> str:
    h = await client.text_document_hover_async(T.HoverParams(
        text_document=doc_id(path), position=position(text, needle, delta, nth)))
    return h.contents.value if h else ""


async def test_hover(client):
    common, child = client.root / "common.ft", client.root / "child.ft"
    md = await _hover(client, common, COMMON, "batch")
    assert "`batch`" in md and "default `1`" in md and "examples per device" in md
    md = await _hover(client, common, COMMON, "validation")
    assert "fraction" in md and "`first`" in md and "range `0 < validation < 1`" in md  # validation or first
    md = await _hover(client, common, COMMON, "smollm2_135m")
    assert "hidden 576" in md and "134.5M parameters" in md
    md = await _hover(client, common, COMMON, "epochs = 2")
    assert "= `2`" in md and "used 1×: common.ft:17:14" in md  # uses in the files this one loads
    md = await _hover(client, common, COMMON, "method")
    assert "trainable" in md and "peak" in md and "| activations |" in md and "fits the" in md
    assert await _hover(client, common, COMMON, "lora") == md  # the label names the block too
    md = await _hover(client, common, COMMON, "perplexity <")
    assert "in a gate" in md and "`perplexity`" in md and "`overfitting`" in md
    md = await _hover(client, child, CHILD, "lr")
    assert "overrides `base`: `lr = lr`" in md
    md = await _hover(client, child, CHILD, "epochs", 9)  # the param, seen from the file that extends
    assert "**param `epochs`** = `2`" in md and "used 2×" in md and "overridden" not in md
    two = COMMON + "\nrecipe small extends base {\n  train { lr = 1e-3 }\n}\n"
    await change_doc(client, common, two, 50)
    md = await _hover(client, common, two, "lr = 2e-4")
    assert "overridden in `small`: `lr = 1e-3` (common.ft:28:11)" in md  # base reads the param; small does not
    await change_doc(client, common, COMMON, 51)
    md = await _hover(client, common, COMMON, "lr = 2e-4")
    assert "used 1×" in md and "overridden in" not in md  # child.ft is not loaded from common.ft
    md = await _hover(client, common, COMMON, "facts", nth=1)
    assert 'jsonl("data/train.jsonl")' in md


async def test_hover_diagnostic_code(client):
    path = client.root / "child.ft"
    text = CHILD.replace("recipe child", "# ftlang: ignore[FT401]\nrecipe child")
    await change_doc(client, path, text, 6)
    md = await _hover(client, path, text, "FT401", 2)
    assert md.startswith("**FT401**")
    await change_doc(client, path, CHILD, 7)


async def _complete(client, path, text, needle, delta=0):
    """Complete at needle+delta in text (sent to the server first)."""
    await change_doc(client, path, text, 100 + len(text))
    res = await client.text_document_completion_async(T.CompletionParams(
        text_document=doc_id(path), position=position(text, needle, delta)))
    return {i.label: i for i in (res.items if hasattr(res, "items") else res)}


async def test_completion(client):
    path = client.root / "common.ft"
    items = await _complete(client, path, COMMON.replace("    batch = 4\n", "    batch = 4\n    gr\n"), "    gr", 6)
    assert {"grad_accum", "gradient_checkpointing", "early_stop"} <= set(items)
    assert "batch" not in items and "lr" not in items  # already set in this block
    items = await _complete(client, path, COMMON.replace("batch = 4", "schedule = "), "schedule = ", 11)
    assert {"cosine", "linear", "constant"} <= set(items) and "lr" in items  # enum values and params
    items = await _complete(client, path, COMMON.replace("targets = all_linear", "targets = ["), "targets = [", 11)
    assert {"all_linear", "attention", "q_proj", "down_proj"} <= set(items)
    items = await _complete(client, path, COMMON.replace("| to_chat", "| "), "facts | ", 8)
    assert {"dedupe", "filter", "to_chat", "mix"} <= set(items)
    items = await _complete(client, path, COMMON.replace("metrics = [perplexity]", "metrics = [perplexity, r"),
                            "perplexity, r", 13)
    assert {"rouge_l", "bleu", "accuracy"} <= set(items)
    items = await _complete(client, path, COMMON.replace("gate perplexity < 20", "forgetting on "), "forgetting on ", 14)
    assert {"facts", "train"} <= set(items)
    items = await _complete(client, path, COMMON.replace('gpu = "A100-40GB"', 'gpu = "'), 'gpu = "', 7)
    assert "H100-80GB" in items
    items = await _complete(client, path, COMMON.replace("model = smollm2_135m", "model = "), "model = ", 8)
    assert "smollm2_135m" in items and not items["smollm2_135m"].additional_text_edits
    llama = items["llama2_7b"]
    assert llama.additional_text_edits[0].new_text == 'import "stdlib/models/llama2.ft"\n'
    items = await _complete(client, path, COMMON.replace("method lora", "method "), "method ", 7)
    assert {"lora", "qlora", "ia3"} <= set(items)
    items = await _complete(client, path, 'import "\n' + COMMON, 'import "', 8)
    assert {"stdlib/models/llama2.ft", "child.ft"} <= set(items)
    await change_doc(client, path, COMMON, 999)


async def test_definitions(client):
    common, child = client.root / "common.ft", client.root / "child.ft"

    async def goto(path, text, needle, delta=0, nth=0):
        return await client.text_document_definition_async(T.DefinitionParams(
            text_document=doc_id(path), position=position(text, needle, delta, nth)))

    loc = await goto(common, COMMON, "lr = lr", 5)
    assert loc.uri == uri(common) and loc.range.start == position(COMMON, "lr = 2e-4")
    loc = await goto(child, CHILD, "base")
    assert loc.uri == uri(common) and loc.range.start == position(COMMON, "base")
    loc = await goto(child, CHILD, "epochs = epochs", 9)
    assert loc.uri == uri(common) and loc.range.start == position(COMMON, "epochs = 2")
    loc = await goto(child, CHILD, "common.ft")
    assert loc.uri == uri(common)
    loc = await goto(common, COMMON, "facts |")
    assert loc.range.start == position(COMMON, "facts")
    loc = await goto(common, COMMON, "smollm2_135m")
    assert loc.uri.endswith("/models/smollm2.ft") and loc.range.start.line > 0


async def test_references(client):
    common = client.root / "common.ft"
    refs = await client.text_document_references_async(T.ReferenceParams(
        text_document=doc_id(common), position=position(COMMON, "epochs = 2"),
        context=T.ReferenceContext(include_declaration=True)))
    where = sorted((r.uri.rsplit("/", 1)[-1], r.range.start.line) for r in refs)
    assert where == [("child.ft", 3), ("common.ft", 3), ("common.ft", 16)]
    refs = await client.text_document_references_async(T.ReferenceParams(
        text_document=doc_id(common), position=position(COMMON, "train ="),
        context=T.ReferenceContext(include_declaration=False)))
    assert sorted(r.range.start.line for r in refs) == [12]  # split train { ... }


async def test_formatting(client):
    from ftlang.syntax.format import format_text

    path = client.root / "child.ft"
    messy = CHILD.replace("  train { lr = 1e-4, epochs = epochs }", "train{lr=1e-4,epochs=epochs}")
    await change_doc(client, path, messy, 20)
    edits = await client.text_document_formatting_async(T.DocumentFormattingParams(
        text_document=doc_id(path), options=T.FormattingOptions(tab_size=2, insert_spaces=True)))
    assert len(edits) == 1 and edits[0].new_text == format_text(messy)[0] == CHILD
    await change_doc(client, path, CHILD, 21)


async def test_code_actions(client):
    path = client.root / "child.ft"
    text = CHILD.replace("epochs = epochs", "epocs = epochs")
    diags = await change_doc(client, path, text, 30)
    actions = await client.text_document_code_action_async(T.CodeActionParams(
        text_document=doc_id(path), range=diags[0].range, context=T.CodeActionContext(diagnostics=diags)))
    titles = {a.title: a for a in actions}
    fix = titles["Change `epocs` to `epochs`"].edit.changes[uri(path)][0]
    assert fix.new_text == "epochs" and fix.range == diags[0].range
    ignore = titles["Ignore FT101 on this line"].edit.changes[uri(path)][0]
    assert ignore.new_text == "  # ftlang: ignore[FT101]"
    line = text.splitlines()[ignore.range.start.line]
    fixed = text.replace(line, line + ignore.new_text)
    assert await change_doc(client, path, fixed, 31) == []  # the suppression takes effect
    await change_doc(client, path, CHILD, 32)


async def test_inlay_hint_matches_the_plan(client):
    from ftlang.semantic.check import check_file
    from ftlang.semantic.units import human_bytes, human_count

    common = client.root / "common.ft"
    hints = await client.text_document_inlay_hint_async(T.InlayHintParams(
        text_document=doc_id(common), range=T.Range(start=T.Position(line=0, character=0),
                                                     end=T.Position(line=40, character=0))))
    (hint,) = hints
    assert hint.position.line == position(COMMON, "method").line
    res = check_file(common).plan.resources
    assert hint.label == f"≈ {human_count(res.trainable_params)} trainable · {human_bytes(res.memory.peak_bytes)} peak"
    # a recipe that inherits its method: the hint sits on its first line
    await open_doc(client, client.root / "child.ft")
    (hint,) = await client.text_document_inlay_hint_async(T.InlayHintParams(
        text_document=doc_id(client.root / "child.ft"), range=T.Range(start=T.Position(line=0, character=0),
                                                                       end=T.Position(line=9, character=0))))
    assert hint.position.line == 2 and hint.label.endswith("peak")


async def test_document_symbols(client):
    syms = await client.text_document_document_symbol_async(
        T.DocumentSymbolParams(text_document=doc_id(client.root / "common.ft")))
    assert [s.name for s in syms] == ["import stdlib/models/smollm2.ft", "lr", "epochs", "base"]
    base = syms[-1]
    assert {"model", "facts", "train", "split train", "method lora", "hardware", "eval"} <= {c.name for c in base.children}


async def test_positions_count_utf16_code_units(client):
    text = 'recipe r {\n  data d = jsonl("\U0001F600.jsonl") { format = chatt }\n}\n'
    diags = await open_doc(client, client.root / "emoji.ft", text)
    (bad,) = [d for d in diags if d.code == "FT104"]
    line = text.split("\n")[1]
    assert bad.range.start == T.Position(line=1, character=line.index("chatt") + 1)  # the emoji is 2 units
    hover = await client.text_document_hover_async(T.HoverParams(
        text_document=doc_id(client.root / "emoji.ft"), position=bad.range.start))
    assert "`format`" in hover.contents.value
