"""Segments: immutable txtai indexes that versions share by name, searched together as one index.

A version of the local store (rag.store) names its segments, oldest (the base) first, each with
its tombstones (index ids deleted or replaced by a later write) and the BM25 statistics of those
tombstoned rows. A write adds one small segment and some tombstones; a merge writes a new base.

Search runs each segment and merges by score, with collection-wide BM25 statistics (N, df, avgdl,
txtai's normalization), so scores are those of one index holding the live rows:

- dense: each segment's FAISS with its tombstones excluded (a FAISS id selector), top k merged;
- keyword: txtai's term-at-a-time BM25 (rag.scoring's candidate selection) over the segments'
  posting lists with global idf/avgdl: rare terms score first, the global top `5 x limit`
  candidates are picked, then common terms (df > 10% of N) are added to those;
- hybrid: txtai's fusion of the two; then each segment's content database runs the SQL (filters,
  columns) on its own candidates and the rows are merged by score.

One segment without tombstones is searched by txtai itself (rag.index.OwnIndexSearch).
Searches from many threads run in parallel; only each segment's content database (one SQLite
cursor) takes turns, on the segment's lock.
"""

import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from txtai import Embeddings
from txtai.embeddings.search import Hybrid
from txtai.scoring.normalize import Normalize
from txtai.scoring.terms import Terms as TxtaiTerms

from .index import (
    MODELS,
    Counted,
    OwnIndexSearch,
    ef_search,
    hnsw_of,
    open_embeddings,
    read_content,
    runtime,
    save_embeddings,
)
from .scoring import among

LAYOUT = "segments.json"
FORMAT = 1
GROUP = 500  # ids per SQL lookup
LIMIT = re.compile(r"\blimit\s+(\d+)\s*$", re.IGNORECASE)


# ---- BM25 statistics ------------------------------------------------------------------


@dataclass
class Stats:
    """BM25 collection statistics of some rows: documents, tokens, document and word frequencies."""

    total: int = 0
    tokens: int = 0
    docfreq: Counter = field(default_factory=Counter)
    wordfreq: Counter = field(default_factory=Counter)

    @classmethod
    def of_scoring(cls, scoring) -> "Stats":
        return cls(scoring.total, scoring.tokens, scoring.docfreq, scoring.wordfreq)

    @classmethod
    def of_texts(cls, tokenize, texts) -> "Stats":
        stats = cls()
        for text in texts:
            if isinstance(text, str):
                tokens = tokenize(text)
                stats.total += 1
                stats.tokens += len(tokens)
                stats.wordfreq.update(tokens)
                stats.docfreq.update(set(tokens))
        return stats

    def add(self, other: "Stats") -> "Stats":
        self.total += other.total
        self.tokens += other.tokens
        self.docfreq.update(other.docfreq)
        self.wordfreq.update(other.wordfreq)
        return self

    def to_json(self) -> dict:
        return {"total": self.total, "tokens": self.tokens, "docfreq": dict(self.docfreq), "wordfreq": dict(self.wordfreq)}

    @classmethod
    def from_json(cls, data: dict | None) -> "Stats":
        data = data or {}
        return cls(data.get("total", 0), data.get("tokens", 0), Counter(data.get("docfreq", {})), Counter(data.get("wordfreq", {})))


class Global:
    """Collection-wide BM25 values (txtai's TFIDF.index) of segments' stats minus removed rows."""

    def __init__(self, stats: list[Stats], removed: list[Stats], k1: float, b: float):
        largest = max(stats, key=lambda s: len(s.docfreq)) if stats else Stats()
        docfreq = dict(largest.docfreq)
        wordterms = len(largest.wordfreq)  # terms with a positive word frequency (same keys as docfreq)
        self.total = sum(s.total for s in stats) - sum(r.total for r in removed)
        tokens = sum(s.tokens for s in stats) - sum(r.tokens for r in removed)
        for other in stats:
            if other is not largest:
                for term, count in other.docfreq.items():
                    docfreq[term] = docfreq.get(term, 0) + count
        for other in removed:
            for term, count in other.docfreq.items():
                docfreq[term] = docfreq.get(term, 0) - count
        self.docfreq = {term: count for term, count in docfreq.items() if count > 0} if removed or len(stats) > 1 else docfreq
        wordterms = len(self.docfreq)
        self.k1, self.b = k1, b
        if self.total > 0 and wordterms:
            self.avgdl = tokens / self.total
            avgfreq = tokens / wordterms
            idfs = self.computeidf(np.array(list(self.docfreq.values())))
            avgidf = float(np.mean(idfs))
            self.avgscore = self.score(avgfreq, avgidf, self.avgdl)
        else:
            self.avgdl, self.avgscore = 0.0, None

    def computeidf(self, freq):
        return np.log(1 + (self.total - freq + 0.5) / (freq + 0.5))

    def idf(self, term: str) -> float:
        return float(self.computeidf(np.array([self.docfreq[term]]))[0])

    def score(self, freq, idf, length):
        k = self.k1 * ((1 - self.b) + self.b * length / self.avgdl)
        return idf * (freq * (self.k1 + 1)) / (freq + k)


# ---- the layout of a version ------------------------------------------------------------


@dataclass
class Part:
    """One segment of a version: its name, rows, tombstoned index ids and their BM25 statistics."""

    name: str
    rows: int
    tombstones: list[int] = field(default_factory=list)
    removed: Stats = field(default_factory=Stats)

    @property
    def live(self) -> int:
        return self.rows - len(self.tombstones)


@dataclass
class Layout:
    """The segments of a version, base first."""

    parts: list[Part] = field(default_factory=list)

    @classmethod
    def read(cls, version: Path | None) -> "Layout":
        if version is None or not (Path(version) / LAYOUT).exists():
            return cls()
        data = json.loads((Path(version) / LAYOUT).read_text(encoding="utf-8"))
        return cls([Part(p["name"], p["rows"], p.get("tombstones", []), Stats.from_json(p.get("removed"))) for p in data["segments"]])

    def write(self, folder: Path):
        data = {
            "format": FORMAT,
            "segments": [{"name": p.name, "rows": p.rows, "tombstones": p.tombstones, "removed": p.removed.to_json()} for p in self.parts],
        }
        (Path(folder) / LAYOUT).write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")

    @property
    def live(self) -> int:
        return sum(p.live for p in self.parts)

    @property
    def base(self) -> Part | None:
        return self.parts[0] if self.parts else None

    def delta(self) -> int:
        """Rows of the delta segments plus every tombstone: what a merge into one base removes."""
        return sum(p.rows for p in self.parts[1:]) + sum(len(p.tombstones) for p in self.parts)


# ---- one segment --------------------------------------------------------------------------


class Segment:
    """One segment open for search (txtai Embeddings), shared by the versions that name it."""

    def __init__(self, path: Path, settings: dict):
        self.path, self.name = Path(path), Path(path).name
        self.embeddings = open_embeddings(self.path, settings)
        self.users = 0
        self.lock = threading.Lock()  # the content database's one cursor; ranking needs none
        scoring = self.embeddings.scoring if self.embeddings.issparse() else None
        self.scoring = scoring
        self.stats = Stats.of_scoring(scoring) if scoring is not None else Stats()
        terms = scoring.terms if scoring is not None else None
        self.terms = terms
        self.positions = np.asarray(terms.ids, dtype=np.int64) if terms is not None else None  # position -> index id
        self.identity = self.positions is not None and np.array_equal(self.positions, np.arange(len(self.positions)))
        self.size = int(self.embeddings.config.get("offset", 0) or (len(self.positions) if self.positions is not None else 0))

    def postings(self, term: str):
        """(positions, term frequencies) of a term in this segment, or (None, None)."""
        with self.terms.lock:
            uids, freqs = self.terms.lookup(term)
        if not uids:
            return None, None
        return np.frombuffer(uids, dtype=np.int64), np.frombuffer(freqs, dtype=np.int64)

    def expand(self, term: str) -> list[str]:
        with self.terms.lock:
            return self.terms.expand([term])

    def to_positions(self, indexids: np.ndarray) -> np.ndarray:
        if self.identity or self.positions is None:
            return indexids
        lookup = {int(indexid): n for n, indexid in enumerate(self.positions)}
        return np.array([lookup[int(i)] for i in indexids if int(i) in lookup], dtype=np.int64)

    def close(self):
        self.embeddings.close()


def locate(path: Path, ids: list[str], skip: set[int]) -> dict[str, list[int]]:
    """Index ids of each of ids in a segment's content database, less those in skip."""
    found: dict[str, list[int]] = {}
    if not ids or not (Path(path) / "documents").exists():
        return found
    with read_content(path) as connection:
        for start in range(0, len(ids), GROUP):
            group = ids[start : start + GROUP]
            for indexid, uid in connection.execute(f"SELECT indexid, id FROM sections WHERE id IN ({','.join('?' * len(group))})", group):
                if indexid not in skip:
                    found.setdefault(uid, []).append(indexid)
    return found


def texts(path: Path, indexids: list[int]):
    """Texts of index ids in a segment (the text BM25 indexed)."""
    with read_content(path) as connection:
        for start in range(0, len(indexids), GROUP):
            group = indexids[start : start + GROUP]
            for (text,) in connection.execute(f"SELECT text FROM sections WHERE indexid IN ({','.join('?' * len(group))})", group):
                yield text


def live_rows(path: Path, tombstones: list[int]):
    """(id, data) of a segment's rows that are not tombstoned, in index order (what a merge re-indexes)."""
    dead = set(tombstones)
    with read_content(path) as connection:
        rows = connection.execute("SELECT s.indexid, s.id, d.data FROM sections s JOIN documents d ON d.id = s.id ORDER BY s.indexid")
        for indexid, uid, data in rows:
            if indexid not in dead:
                yield uid, json.loads(data)


def ids_of(path: Path):
    """Every id of a segment's content database, in batches."""
    if not (Path(path) / "documents").exists():
        return
    with read_content(path) as connection:
        cursor = connection.execute("SELECT id FROM sections")
        while batch := cursor.fetchmany(GROUP * 10):
            yield [uid for (uid,) in batch]


def tokenizer(settings: dict):
    """The BM25 tokenizer of the index settings (txtai's, as the scoring index uses)."""
    from txtai.scoring import ScoringFactory

    return ScoringFactory.create(dict(settings.get("scoring") or {"method": "bm25", "terms": True})).tokenize


def build(folder: Path, settings: dict, rows) -> tuple[int, int]:
    """Indexes rows (an iterable, consumed once) into a new segment folder; returns (rows, texts
    the model encoded). An empty iterable writes nothing."""
    embeddings = Embeddings(runtime(settings), models=MODELS)
    rows = Counted(rows)
    try:
        embeddings.index(rows)
        model = embeddings.model
        encoded = getattr(model, "encoded", rows.count) if model is not None else 0
        if rows.count and embeddings.count():
            Path(folder).mkdir(parents=True, exist_ok=True)
            save_embeddings(embeddings, Path(folder))
            return embeddings.count(), encoded
        return 0, encoded
    finally:
        embeddings.close()


# ---- searching segments together --------------------------------------------------------


class Collection:
    """Segments with their tombstones, searched as one index (see the module docstring)."""

    def __init__(self, segments: list[Segment], parts: list[Part]):
        self.segments, self.parts = segments, parts
        self.dead = [np.asarray(sorted(p.tombstones), dtype=np.int64) for p in parts]
        self.tombstoned = [set(p.tombstones) for p in parts]
        first = segments[0].embeddings if segments else None
        self.single = len(segments) == 1 and not parts[0].tombstones
        self.scoring = next((s.scoring for s in segments if s.scoring is not None), None)
        self.hasann = any(s.embeddings.ann is not None for s in segments)
        if self.scoring is not None and not self.single:
            k1, b = getattr(self.scoring, "k1", 1.2), getattr(self.scoring, "b", 0.75)
            self.stats = Global([s.stats for s in segments], [p.removed for p in parts], k1, b)
            self.normalizer = Normalize(self.scoring.normalize) if self.scoring.normalize else None
            self.cutoff = self.scoring.terms.cutoff if self.scoring.terms else 0.1
        self.first = first
        self.selectors = [self.selector(s, d) for s, d in zip(segments, self.dead)]
        self.weightcache: dict = {}

    @staticmethod
    def selector(segment: Segment, dead: np.ndarray):
        """A FAISS selector of the live index ids of a segment (None: all are live)."""
        if not len(dead) or segment.embeddings.ann is None:
            return None
        import faiss

        size = max(segment.size, int(dead.max()) + 1)
        bits = np.zeros((size + 7) // 8, dtype=np.uint8)
        np.bitwise_or.at(bits, dead >> 3, (1 << (dead & 7)).astype(np.uint8))
        inner = faiss.IDSelectorBitmap(size, faiss.swig_ptr(bits))
        selector = faiss.IDSelectorNot(inner)
        selector.keep = (bits, inner)  # the bitmap and inner selector live as long as the selector
        return selector

    # ---- SQL ---------------------------------------------------------------------------

    def search(self, sql: str, parameters: dict) -> list[dict]:
        """Rows of one txtai SQL query over every segment."""
        if not self.segments:
            return []
        if self.single:
            return OwnIndexSearch(self.first, self.segments[0].lock)([sql], parameters=[parameters])[0]
        ranked: dict = {}  # this query's global ranking, shared by its segment searches
        rows = []
        for position, segment in enumerate(self.segments):
            found = SegmentSearch(segment, self, position, ranked)([sql], parameters=[parameters])[0]
            if "similar(" not in sql.lower():
                found = [row for row in found if row.get("id") is None or not self.hidden(position, row["id"])]
            rows.extend(found)
        if rows and "similar(" in sql.lower() and all("score" in row for row in rows):
            rows.sort(key=lambda row: -row["score"])
        limit = LIMIT.search(sql.strip())
        return rows[: int(limit.group(1))] if limit else rows

    def hidden(self, position: int, uid) -> bool:
        """True when the row of id uid in a segment is tombstoned."""
        if not self.tombstoned[position]:
            return False
        located = locate(self.segments[position].path, [uid], set())
        return any(indexid in self.tombstoned[position] for indexid in located.get(uid, []))

    # ---- candidates (txtai's Search.search across segments) -------------------------------

    def candidates(self, queries, limit, weights, position, ranked: dict):
        """This segment's share of the global candidates of queries: (index id, score) lists. The
        global ranking is computed once per query and kept in `ranked` for the other segments."""
        key = (tuple(queries), limit, str(weights))
        if key not in ranked:
            ranked[key] = [self.rank(query, limit, weights) for query in queries]
        return [[(indexid, score) for (where, indexid), score in found if where == position] for found in ranked[key]]

    def rank(self, query: str, limit: int, weights) -> list:
        """Global ((segment, index id), score) of one query, as txtai's (and OwnIndexSearch's) search."""
        hybrid = self.hasann and self.scoring is not None
        if isinstance(weights, (int, float)):
            weights = [weights, 1 - weights]
        if not hybrid:
            return self.dense(query, limit) if self.hasann else self.sparse(query, limit)
        if weights[0] in (0.0, 1.0):
            dense = self.dense(query, limit) if weights[0] == 1.0 else []
            sparse = self.sparse(query, limit * 10) if weights[0] == 0.0 else []
        else:
            dense, sparse = self.dense(query, limit * 10), self.sparse(query, limit * 10)
        return Hybrid(self.scoring)((dense, sparse), weights, limit)

    def dense(self, query: str, limit: int) -> list:
        import faiss

        vector = self.first.batchtransform([(None, query, None)])
        found = []
        for position, segment in enumerate(self.segments):
            ann = segment.embeddings.ann
            if ann is None:
                continue
            k = min(limit, segment.size)
            if k <= 0:
                continue
            inner = hnsw_of(ann.backend)
            if inner is not None:
                params = faiss.SearchParametersHNSW(efSearch=ef_search(segment.embeddings.config, k), sel=self.selectors[position])
            else:
                params = faiss.SearchParameters(sel=self.selectors[position]) if self.selectors[position] is not None else None
            scores, ids = ann.backend.search(vector, k, params=params) if params is not None else ann.backend.search(vector, k)
            found.extend(((position, int(i)), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0 and s > 0)
        found.sort(key=lambda item: -item[1])
        return found[:limit]

    def weights(self, position: int, term: str):
        """(positions, BM25 weights) of a term in one segment with the global statistics."""
        key = (position, term)
        cached = self.weightcache.get(key)
        if cached is not None:
            return cached
        segment = self.segments[position]
        uids, freqs = segment.postings(term)
        result = (None, None)
        if uids is not None:
            lengths = np.frombuffer(segment.terms.lengths, dtype=np.int64)
            result = (uids, self.stats.score(freqs, self.stats.idf(term), lengths[uids]).astype(np.float32))
        if len(self.weightcache) > 2000:
            self.weightcache.clear()
        self.weightcache[key] = result
        return result

    def sparse(self, query: str, limit: int) -> list:
        """txtai's Terms.search + TFIDF.search (rag.scoring's candidates) over every segment."""
        stats = self.stats
        if not stats.total or stats.avgscore is None:
            return []
        terms = self.scoring.terms
        tokens = self.scoring.tokenize(terms.escape(query))
        expanded = []
        for token in tokens:
            if TxtaiTerms.ASTERISK in token:
                seen = []
                for segment in self.segments:
                    seen.extend(t for t in segment.expand(token) if t not in seen)
                expanded.extend(seen)
            else:
                expanded.append(token)

        dead = self.deadpositions()
        scores = [np.zeros(len(s.positions), dtype=np.float32) for s in self.segments]
        skipped, hasscores = {}, False
        for term, freq in Counter(expanded).items():
            if stats.docfreq.get(term, 0) <= 0:
                continue
            if stats.docfreq[term] <= self.cutoff * stats.total:
                for position in range(len(self.segments)):
                    uids, weights = self.weights(position, term)
                    if uids is not None:
                        scores[position][uids] += freq * weights
                hasscores = True
            else:
                skipped[term] = freq

        topn = min(stats.total, limit * 5)
        for score, d in zip(scores, dead):
            score[d] = 0
        matches = self.choose(scores, dead, topn)
        for term, freq in skipped.items():
            for position in range(len(self.segments)):
                uids, weights = self.weights(position, term)
                if uids is None:
                    continue
                if hasscores:
                    uids, weights = among(uids, weights, matches[position])
                scores[position][uids] += freq * weights
        for score, d in zip(scores, dead):
            score[d] = 0
        if not hasscores:
            matches = self.choose(scores, dead, topn)

        found = [((position, m), scores[position][m]) for position in range(len(self.segments)) for m in matches[position]]
        found.sort(key=lambda item: -item[1])
        ranked = [((position, int(self.segments[position].positions[m])), float(score)) for (position, m), score in found[:limit] if score > 0]
        if self.normalizer and ranked:
            ranked = self.normalizer(ranked, stats.avgscore)
        return [(uid, float(score)) for uid, score in ranked if score > 0]

    def deadpositions(self) -> list[np.ndarray]:
        """Per segment, the term index positions of tombstoned rows and of rows txtai deleted."""
        if getattr(self, "_dead", None) is None:
            dead = [segment.to_positions(d) if len(d) else d for segment, d in zip(self.segments, self.dead)]
            self._dead = [np.union1d(d, np.asarray(s.terms.deletes, dtype=np.int64)) if s.terms.deletes else d for s, d in zip(self.segments, dead)]
        return self._dead

    def choose(self, scores, dead, topn) -> list[np.ndarray]:
        """Per segment, sorted positions of the global top topn candidates (rag.scoring.Terms.candidates)."""
        if topn >= self.stats.total:  # every live row is a candidate
            return [np.setdiff1d(np.arange(len(score)), d) for score, d in zip(scores, dead)]
        matched = [np.flatnonzero(score) for score in scores]
        if sum(len(m) for m in matched) <= topn:
            return matched
        values = np.concatenate([score[m] for score, m in zip(scores, matched)])
        owners = np.concatenate([np.full(len(m), position) for position, m in enumerate(matched)])
        places = np.concatenate(matched)
        chosen = np.argpartition(values, -topn)[-topn:]
        return [np.sort(places[chosen[owners[chosen] == position]]) for position in range(len(scores))]


class SegmentSearch(OwnIndexSearch):
    """txtai's search of one segment's content database, on its share of the global candidates."""

    def __init__(self, segment: Segment, collection: Collection, position: int, ranked: dict):
        super().__init__(segment.embeddings, segment.lock)
        self.collection, self.position, self.ranked = collection, position, ranked

    def search(self, queries, limit, weights, index):
        return self.collection.candidates(queries, limit, weights, self.position, self.ranked)


def plan_deltas(rows: list[int], most: int) -> int | None:
    """Where the newest delta segments of similar size start when there are more than `most`
    (size-tiered: each merged segment is at most as big as the newer ones merged with it); None: no merge."""
    if len(rows) <= most:
        return None
    total, start = 0, len(rows)
    for position in range(len(rows) - 1, -1, -1):
        if total and rows[position] > total:
            break
        total += rows[position]
        start = position
    return min(start, len(rows) - 2)


def unused(folder: Path, named: set[str]) -> list[Path]:
    """Segment folders under folder that no name in named refers to."""
    if not Path(folder).is_dir():
        return []
    return [path for path in Path(folder).iterdir() if path.is_dir() and path.name not in named]


