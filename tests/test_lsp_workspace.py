"""The language server never reads outside the workspace root: imports and data paths that leave it
are FT204 errors (the files are never opened), and a document outside every folder is only parsed.
Also here (a server with a long debounce window, positions in UTF-32): a burst of edits is checked
once, and columns count code points when the client asks for them."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("pygls")
pytest_lsp = pytest.importorskip("pytest_lsp")

from lsp_support import PUBLISH, change_doc, config, initialize, open_doc, until_published, uri  # noqa: E402
from lsprotocol import types as T  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(config=config(), scope="module")
async def client(lsp_client: pytest_lsp.LanguageClient, request):
    project = request.getfixturevalue("tmp_path_factory").mktemp("project")
    (project / ".git").mkdir()
    ws = project / "ws"  # the workspace is a folder inside the project: reads stop at ws/
    ws.mkdir()
    # outside the workspace, but inside the project: read, these would add their own diagnostics
    (project / "outside.ft").write_text("recipe broken {{{\n", encoding="utf-8")
    (project / "rows.jsonl").write_text("not json\n", encoding="utf-8")
    lsp_client.project, lsp_client.ws = project, ws
    utf32 = T.ClientCapabilities(general=T.GeneralClientCapabilities(
        position_encodings=[T.PositionEncodingKind.Utf32]))
    lsp_client.init_result = await initialize(lsp_client, ws, {"debounce_ms": 2500}, utf32)
    yield
    await lsp_client.shutdown_session()


async def test_imports_and_data_outside_the_workspace_are_refused(client):
    text = ('import "../outside.ft"\nimport "stdlib/models/smollm2.ft"\n\nrecipe r {\n  model = smollm2_135m\n'
            '  data d = jsonl("../rows.jsonl")\n  dataset train = d\n  method lora { r = 8 }\n}\n')
    path = client.ws / "r.ft"
    path.write_text(text, encoding="utf-8")
    diags = await open_doc(client, path)
    refused = [d for d in diags if d.code == "FT204"]
    assert {d.range.start.line for d in refused} == {0, 5}
    assert not [d for d in diags if d.code.startswith("FT0") or d.code.startswith("FT6")]  # never parsed/read


async def test_a_document_outside_the_workspace_is_only_parsed(client):
    path = client.project / "elsewhere.ft"
    path.write_text('import "missing.ft"\nrecipe r { model = nope }\n', encoding="utf-8")
    assert await open_doc(client, path) == []  # no import resolved, no names looked up
    diags = await open_doc(client, path, "recipe r {\n")
    assert [d.code for d in diags] == ["FT003"]


class _Counting(dict):
    """client.diagnostics that counts how often each document's diagnostics were published."""

    def __init__(self) -> None:
        super().__init__()
        self.count: dict[str, int] = {}

    def __setitem__(self, key, value) -> None:
        self.count[key] = self.count.get(key, 0) + 1
        super().__setitem__(key, value)


async def test_a_burst_of_edits_is_checked_once(client):
    path = client.ws / "burst.ft"
    text = 'recipe r {\n  train { epochs = 1 }\n}\n'
    await open_doc(client, path, text)
    # the first edit after a quiet spell (here: the open) is checked at once
    client.diagnostics = counting = _Counting()
    await change_doc(client, path, text.replace("epochs", "epocs0"), 2)
    assert counting.count[uri(path)] == 1
    for i in range(1, 6):  # well inside the 2.5 s window of each other: one check after the last
        client.text_document_did_change(T.DidChangeTextDocumentParams(
            text_document=T.VersionedTextDocumentIdentifier(uri=uri(path), version=2 + i),
            content_changes=[T.TextDocumentContentChangeWholeDocument(text=text.replace("epochs", f"epocs{i}"))]))
    while not any("epocs5" in d.message for d in counting.get(uri(path), ())):
        await asyncio.wait_for(client.wait_for_notification(PUBLISH), 30)
    assert counting.count[uri(path)] == 2


async def test_positions_in_the_negotiated_encoding(client):
    assert client.init_result.capabilities.position_encoding == T.PositionEncodingKind.Utf32
    text = 'recipe r {\n  data d = jsonl("\U0001F600.jsonl") { format = chatt }\n}\n'
    diags = await open_doc(client, client.ws / "emoji.ft", text)
    (bad,) = [d for d in diags if d.code == "FT104"]
    line = text.split("\n")[1]
    assert bad.range.start == T.Position(line=1, character=line.index("chatt"))  # code points, not UTF-16


async def test_files_changed_on_disk_are_rechecked(client):
    lib, user = client.ws / "lib.ft", client.ws / "user.ft"
    lib.write_text("param steps = 10\n", encoding="utf-8")
    text = 'import "lib.ft"\nrecipe r {\n  train { max_steps = steps }\n}\n'
    before = await open_doc(client, user, text)
    assert not [d for d in before if d.code == "FT201"]
    lib.write_text("param other = 10\n", encoding="utf-8")  # not open: only the file watcher tells
    event = T.DidChangeWatchedFilesParams(changes=[T.FileEvent(uri=uri(lib), type=T.FileChangeType.Changed)])
    after = await until_published(client, uri(user), lambda: client.workspace_did_change_watched_files(event))
    assert [d for d in after if d.code == "FT201" and "steps" in d.message]
