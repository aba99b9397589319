"""`ftlang lsp`: a Language Server Protocol server over stdio (pygls), torch-free.

    server.py       the server, its debounced diagnostics and guarded handlers
    features.py     the LSP methods it answers, each a thin handler over the modules below
    state.py        open documents, workspace roots, the checker's analysis of each document
    diagnostics.py  ftlang Diagnostic → LSP Diagnostic (code, severity, range, help as related info)
    positions.py    character offsets ↔ LSP positions (UTF-16 unless negotiated otherwise)
    locate.py, cursor.py   the node under the cursor (parsed text), the context from raw text
    names.py        cards, params, data names and the summaries shown for them
    hover.py, completion.py, definitions.py, actions.py (formatting, code actions), symbols.py (+ inlay hints)
"""
