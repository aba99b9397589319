"""`ftlang serve`: one base model, several PEFT adapters, an OpenAI-compatible HTTP API."""
