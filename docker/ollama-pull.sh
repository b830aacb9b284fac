#!/bin/sh
# One-shot model preload (compose service ollama-pull): pulls $OLLAMA_MODEL into the Ollama
# server at $OLLAMA_HOST, which stores it in the ollama-models volume. Skipped when present.
set -eu

model="${OLLAMA_MODEL:?set OLLAMA_MODEL in .env}"

if ollama show "$model" >/dev/null 2>&1; then
    echo "ollama-pull: model $model already present on $OLLAMA_HOST, skipping pull"
    exit 0
fi

echo "ollama-pull: pulling $model into $OLLAMA_HOST (first start only, this can take minutes)"
ollama pull "$model"
echo "ollama-pull: model $model pulled"
