"""Structure-aware, token-bounded chunking measured in the embedding model's tokenizer."""

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from transformers import AutoTokenizer

SENTENCE_END = re.compile(r"[.!?:;][\"')\]]?$")


@dataclass
class Chunk:
    """A passage of a section: body text, its context prefix and where it came from."""

    text: str
    prefix: str
    heading: list[str]
    page: int | None
    start: int
    end: int
    tokens: int

    @property
    def indexed(self) -> str:
        """The text that is embedded and keyword-indexed: context prefix + body."""
        return self.prefix + self.text


class Chunker:
    """Splits sections into chunks that never exceed the model's maximum sequence length.

    Chunks end at paragraph breaks where possible, else at sentence ends, else at whitespace,
    and consecutive chunks of a section overlap by up to `overlap` tokens. Each chunk can carry
    a context prefix (document title and heading path) that is embedded with it.
    """

    def __init__(self, model: str, max_tokens: int = 200, overlap: int = 32, context_prefix: bool = True):
        self.tokenizer = tokenizer(model)
        self.limit = min(max_tokens, max_sequence_length(model, self.tokenizer) - 2)
        self.overlap = min(overlap, self.limit // 4)
        self.context_prefix = context_prefix

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def __call__(self, title: str, sections) -> list[Chunk]:
        chunks = []
        for section in sections:
            prefix = self.prefix(title, section.heading)
            budget = self.limit - self.count(prefix) if prefix else self.limit
            if budget < self.limit // 2:
                prefix, budget = "", self.limit
            for start, end, tokens in self.split(section.text, budget):
                body = section.text[start:end]
                chunks.append(
                    Chunk(body, prefix, list(section.heading), section.page, section.start + start, section.start + end, tokens)
                )
        return chunks

    def prefix(self, title: str, heading: list[str]) -> str:
        if not self.context_prefix:
            return ""
        parts = [title] + [h for h in heading if h and h != title]
        line = " > ".join(p.strip() for p in parts if p and p.strip())
        return f"{line}\n" if line else ""

    def split(self, text: str, budget: int):
        """Yields (start, end, tokens) character spans of at most `budget` tokens."""
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoding["offset_mapping"]
        total = len(offsets)
        if not text.strip():
            return
        if total <= budget:
            left, right = leading(text), len(text.rstrip())
            yield left, right, total
            return

        begin = 0
        while begin < total:
            end = min(begin + budget, total)
            if end < total:
                end = self.boundary(text, offsets, begin + budget // 2, end)
            start, stop = offsets[begin][0], offsets[end - 1][1]
            yield start, stop, end - begin
            if end >= total:
                break
            begin = self.restart(text, offsets, max(end - self.overlap, begin + 1), end)

    @staticmethod
    def boundary(text, offsets, low, high) -> int:
        """Best token index in (low, high] to end a chunk: paragraph, line, sentence, then word."""
        best = {}
        for index in range(high, low, -1):
            gap = text[offsets[index - 1][1] : offsets[index][0]]
            if not gap:
                continue
            before = text[offsets[index - 1][0] : offsets[index - 1][1]]
            if "\n\n" in gap:
                best.setdefault("paragraph", index)
            if "\n" in gap:
                best.setdefault("line", index)
            if SENTENCE_END.search(before):
                best.setdefault("sentence", index)
            best.setdefault("word", index)
        for kind in ("paragraph", "line", "sentence", "word"):
            if kind in best:
                return best[kind]
        return high

    @staticmethod
    def restart(text, offsets, low, high) -> int:
        """Token index in [low, high] to start the next chunk: a sentence or word start."""
        for kind in ("sentence", "word"):
            for index in range(low, high + 1):
                gap = text[offsets[index - 1][1] : offsets[index][0]]
                before = text[offsets[index - 1][0] : offsets[index - 1][1]]
                if gap and (kind == "word" or SENTENCE_END.search(before)):
                    return index
        return high


def leading(text: str) -> int:
    return len(text) - len(text.lstrip())


@lru_cache(maxsize=4)
def tokenizer(model: str):
    """The model's tokenizer, set to count whole sections without "sequence too long" warnings."""
    loaded = AutoTokenizer.from_pretrained(model)
    loaded.sequence_limit = min(int(loaded.model_max_length), 512)
    loaded.model_max_length = 1 << 30
    return loaded


def max_sequence_length(model: str, tokenizer) -> int:
    """The model's maximum sequence length (sentence-transformers config, else the tokenizer's)."""
    config = Path(model) / "sentence_bert_config.json"
    if config.exists():
        return int(json.loads(config.read_text())["max_seq_length"])
    return tokenizer.sequence_limit
