// The VS Code client for ftlang: starts `ftlang lsp` (stdio) for .ft files.
// Settings: ftlang.server.command (default ["ftlang", "lsp"]), ftlang.server.debounceMs.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("ftlang");
  const [command, ...args] = config.get("server.command", ["ftlang", "lsp"]);
  const serverOptions = { command, args };
  const clientOptions = {
    documentSelector: [{ scheme: "file", language: "ftlang" }],
    // recipes and data files changed outside the editor: the server re-checks the open recipes
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.{ft,jsonl,json,csv,parquet}") },
    initializationOptions: { debounce_ms: config.get("server.debounceMs", 150) },
  };
  client = new LanguageClient("ftlang", "ftlang language server", serverOptions, clientOptions);
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
