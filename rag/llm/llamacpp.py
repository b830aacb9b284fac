"""The tokenizer and chat template of a llama.cpp server, read over its HTTP API."""

import httpx


class LlamaCppTokenizer:
    """Counts tokens exactly with a llama.cpp server's `/tokenize` and `/apply-template`.

    The embedded backend uses the server xllamacpp runs in process; the OpenAI-compatible
    backend uses it when its server is llama.cpp's.
    """

    def __init__(self, root: str, api_key: str | None = None, timeout: float = 10.0):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.root = root.rstrip("/")
        self.client = httpx.Client(base_url=self.root, headers=headers, timeout=timeout)

    @classmethod
    def probe(cls, root: str, api_key: str | None = None, timeout: float = 5.0):
        """A tokenizer if root is a llama.cpp server that answers /tokenize, else None."""
        tokenizer = cls(root, api_key, timeout)
        try:
            tokenizer.tokenize("probe")
            return tokenizer
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            tokenizer.close()
            return None

    def tokenize(self, text: str) -> list[int]:
        response = self.client.post("/tokenize", json={"content": text, "add_special": False})
        response.raise_for_status()
        return response.json()["tokens"]

    def count(self, text: str) -> int:
        return len(self.tokenize(text)) if text else 0

    def template(self, messages: list[dict]) -> str:
        """The prompt string the server's chat template makes of messages."""
        response = self.client.post("/apply-template", json={"messages": messages})
        response.raise_for_status()
        return response.json()["prompt"]

    def count_messages(self, messages: list[dict]) -> int:
        """Exact prompt tokens of a chat request (template, special tokens and BOS included)."""
        response = self.client.post("/tokenize", json={"content": self.template(messages), "add_special": True})
        response.raise_for_status()
        return len(response.json()["tokens"])

    def context_window(self) -> int | None:
        """The server's context size per slot, from /props."""
        try:
            response = self.client.get("/props")
            response.raise_for_status()
            return int(response.json()["default_generation_settings"]["n_ctx"])
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            return None

    def close(self):
        self.client.close()
