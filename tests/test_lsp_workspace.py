"""The language server never reads outside the workspace root: imports and data paths that leave it
are FT204 errors (the files are never opened), and a document outside every folder is only parsed."""

from __future__ import annotations

import pytest

pytest.importorskip("pygls")
pytest_lsp = pytest.importorskip("pytest_lsp")

from lsp_support import SERVER, initialize, open_doc  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(config=pytest_lsp.ClientServerConfig(server_command=SERVER), scope="module")
async def client(lsp_client: pytest_lsp.LanguageClient, request):
    project = request.getfixturevalue("tmp_path_factory").mktemp("project")
    (project / ".git").mkdir()
    ws = project / "ws"  # the workspace is a folder inside the project: reads stop at ws/
    ws.mkdir()
    # outside the workspace, but inside the project: read, these would add their own diagnostics
    (project / "outside.ft").write_text("recipe broken {{{\n", encoding="utf-8")
    (project / "rows.jsonl").write_text("not json\n", encoding="utf-8")
    lsp_client.project, lsp_client.ws = project, ws
    await initialize(lsp_client, ws)
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
