"""BM25 ranked inside PostgreSQL: a txtai scoring backend with its inverted index in tables.

txtai's `pgtext` ranks with `ts_rank`, which ignores how rare a term is in the index (and its
`plainto_tsquery` wants every query term). This backend keeps what BM25 needs in tables that
each write maintains in its own transaction, from `to_tsvector(language, text)`:

    <table>           indexid -> terms (tsvector), length (tokens)
    <table>_postings  (term, indexid) -> term frequency, length: the inverted index
    <table>_terms     term -> documents holding it (df), occurrences (cf)
    <table>_stats     one row: documents, tokens, avgscore (txtai's score normalization)

A query reads the postings of its terms only and scores them with k1/b BM25 (idf as txtai's
BM25: ln(1 + (N - df + 0.5) / (df + 0.5))); every replica ranks with the statistics of the
last committed write. Declared in txtai settings as

    scoring: {method: rag.pgbm25.PGBM25, url: postgresql+psycopg2://..., schema: NAME,
              table: bm25, language: english, k1: 1.2, b: 0.75, normalize: true}
"""

import os
import re

from sqlalchemy import StaticPool, create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateSchema
from txtai.scoring import Scoring
from txtai.scoring.normalize import Normalize

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS {t} (indexid integer PRIMARY KEY, terms tsvector NOT NULL, length integer NOT NULL);
CREATE TABLE IF NOT EXISTS {t}_postings (term text, indexid integer, tf integer NOT NULL, length integer NOT NULL,
                                         PRIMARY KEY (term, indexid) INCLUDE (tf, length));
CREATE TABLE IF NOT EXISTS {t}_terms (term text PRIMARY KEY, df integer NOT NULL, cf bigint NOT NULL);
CREATE TABLE IF NOT EXISTS {t}_stats (id integer PRIMARY KEY CHECK (id = 1), documents bigint NOT NULL, tokens bigint NOT NULL,
                                      avgscore double precision NOT NULL DEFAULT 0, scored bigint NOT NULL DEFAULT 0);
INSERT INTO {t}_stats (id, documents, tokens) VALUES (1, 0, 0) ON CONFLICT DO NOTHING;
"""

INSERT = """
INSERT INTO {t} (indexid, terms, length)
SELECT :indexid, v, (SELECT coalesce(sum(array_length(positions, 1)), 0) FROM unnest(v))
FROM to_tsvector(CAST(:language AS regconfig), :text) AS v
"""
ADD_POSTINGS = """
INSERT INTO {t}_postings (term, indexid, tf, length)
SELECT lexeme, d.indexid, array_length(positions, 1), d.length FROM {t} AS d, unnest(d.terms) WHERE d.indexid = ANY(:ids)
"""
DELETE_POSTINGS = """
DELETE FROM {t}_postings AS p USING {t} AS d, unnest(d.terms) AS u
WHERE d.indexid = ANY(:ids) AND p.term = u.lexeme AND p.indexid = d.indexid
"""

# Term and collection statistics of some rows, added (:sign = 1) or removed (:sign = -1)
COUNT_TERMS = """
INSERT INTO {t}_terms AS t (term, df, cf)
SELECT lexeme, :sign * count(*), :sign * sum(array_length(positions, 1))
FROM {t} AS d, unnest(d.terms) WHERE d.indexid = ANY(:ids) GROUP BY lexeme
ON CONFLICT (term) DO UPDATE SET df = t.df + excluded.df, cf = t.cf + excluded.cf
"""
DELETE_TERMS = """
DELETE FROM {t}_terms WHERE df <= 0 AND term IN (SELECT lexeme FROM {t} AS d, unnest(d.terms) WHERE d.indexid = ANY(:ids))
"""
COUNT_DOCUMENTS = """
UPDATE {t}_stats SET documents = documents + :sign * (SELECT count(*) FROM {t} WHERE indexid = ANY(:ids)),
                     tokens = tokens + :sign * (SELECT coalesce(sum(length), 0) FROM {t} WHERE indexid = ANY(:ids))
"""
# A full index counts them once, from its postings, when it is flushed (upserting the terms of every
# batch was most of a large build's keyword time)
RECOUNT = """
DELETE FROM {t}_terms;
INSERT INTO {t}_terms (term, df, cf) SELECT term, count(*), sum(tf) FROM {t}_postings GROUP BY term;
UPDATE {t}_stats SET documents = (SELECT count(*) FROM {t}), tokens = (SELECT coalesce(sum(length), 0) FROM {t});
"""

# txtai's average BM25 score (average term frequency and idf, document of average length). It
# reads every term, so it is refreshed only when the document count moved 1% since (`scored`).
AVGSCORE = """
UPDATE {t}_stats SET scored = documents, avgscore = coalesce((
    SELECT avg(ln(1 + (s.documents - t.df + 0.5) / (t.df + 0.5)))
           * (s.tokens::float / count(*) * (:k1 + 1)) / (s.tokens::float / count(*) + :k1)
    FROM {t}_terms AS t CROSS JOIN {t}_stats AS s GROUP BY s.documents, s.tokens), 0)
WHERE scored = 0 OR abs(documents - scored) * 100 > documents
"""

# Materialized CTEs and a lateral join pin the plan: a few primary-key lookups into the terms,
# then one index range scan of the postings per query term (never a scan of all postings).
SEARCH = """
WITH stats AS MATERIALIZED (
    SELECT documents, tokens::float8 / greatest(documents, 1) AS avgdl, avgscore FROM {t}_stats WHERE id = 1
), weights AS MATERIALIZED (
    SELECT t.term, ln(1 + (s.documents - t.df + 0.5)::float8 / (t.df + 0.5)) AS idf
    FROM (SELECT DISTINCT lexeme FROM unnest(to_tsvector(CAST(:language AS regconfig), :query))) AS q
    JOIN {t}_terms AS t ON t.term = q.lexeme CROSS JOIN stats AS s
)
SELECT p.indexid, sum(w.idf * p.tf * (:k1 + 1) / (p.tf + :k1 * (1 - :b + :b * p.length / s.avgdl))) AS score, s.avgscore
FROM weights AS w
CROSS JOIN LATERAL (SELECT indexid, tf, length FROM {t}_postings WHERE term = w.term) AS p
CROSS JOIN stats AS s
GROUP BY p.indexid, s.avgscore
ORDER BY score DESC
LIMIT :limit
"""


class PGBM25(Scoring):
    """BM25 keyword scoring stored in and computed by PostgreSQL."""

    def __init__(self, config=None):
        super().__init__(config)
        self.table = self.config.get("table", "bm25")
        if not IDENTIFIER.match(self.table):
            raise ValueError(f"scoring.table must be a lowercase SQL identifier, got {self.table!r}")
        self.language = self.config.get("language", "english")
        self.k1, self.b = float(self.config.get("k1", 1.2)), float(self.config.get("b", 0.75))
        normalize = self.config.get("normalize")
        self.normalizer = Normalize(normalize) if normalize else None
        self.engine, self.connection, self.database = None, None, None
        self.dirty = False
        self.recount = False  # a full index in progress: statistics counted once, at flush
        self.create = True  # False: the tables exist (a reader), nothing is created

    def insert(self, documents, index=None, checkpoint=None):
        self.initialize(recreate=index == 0)
        self.recount = self.recount or index == 0
        rows = []
        for uid, document, _ in documents:
            if isinstance(document, dict):
                document = document.get(self.text, document.get(self.object))
            if document is not None:
                uid = index if index is not None else uid
                if isinstance(document, (str, list)):
                    rows.append({"indexid": int(uid), "text": " ".join(document) if isinstance(document, list) else document})
                index = index + 1 if index is not None else None
        if rows:
            ids = [row["indexid"] for row in rows]
            self.execute(INSERT, [{**row, "language": self.language} for row in rows])
            self.execute(ADD_POSTINGS, {"ids": ids})
            if self.recount:
                self.dirty = True
            else:
                self.count_rows(ids, 1)

    def delete(self, ids):
        self.initialize()
        ids = [int(uid) for uid in ids]
        self.count_rows(ids, -1)
        self.execute(DELETE_TERMS, {"ids": ids})
        self.execute(DELETE_POSTINGS, {"ids": ids})
        self.execute(f"DELETE FROM {self.table} WHERE indexid = ANY(:ids)", {"ids": ids})

    def count_rows(self, ids: list[int], sign: int):
        """Adds (sign 1) or removes (sign -1) the terms and lengths of rows to the statistics."""
        self.execute(COUNT_TERMS, {"ids": ids, "sign": sign})
        self.execute(COUNT_DOCUMENTS, {"ids": ids, "sign": sign})
        self.dirty = True

    def search(self, query, limit=3):
        self.initialize()
        rows = self.execute(SEARCH, {"query": query, "language": self.language, "k1": self.k1, "b": self.b, "limit": int(limit)}).all()
        scores = [(indexid, float(score)) for indexid, score, _ in rows]
        if self.normalizer and scores:
            scores = self.normalizer(scores, rows[0][2] or scores[0][1])
        return scores

    def batchsearch(self, queries, limit=3, threads=True):
        return [self.search(query, limit) for query in queries]

    def count(self):
        self.initialize()
        return self.execute(f"SELECT count(*) FROM {self.table}").scalar()

    def load(self, path):
        self.initialize()

    def save(self, path):
        self.flush()
        if self.database:
            self.database.commit()

    def flush(self):
        """Counts the statistics of a full index, and refreshes the average score (normalization)
        after writes; part of the write's transaction."""
        if self.database and self.recount:
            self.execute(RECOUNT)
            self.recount = False
        if self.database and self.dirty:
            self.execute(AVGSCORE, {"k1": self.k1})
            self.dirty = False

    def close(self):
        if self.database:
            self.database.close()
            self.engine.dispose()
            self.engine, self.connection, self.database = None, None, None

    def issparse(self):
        return True

    def isnormalized(self):
        return bool(self.normalizer)

    def isbayes(self):
        return bool(self.normalizer and self.normalizer.isbayes())

    def weights(self, tokens):
        return None

    def initialize(self, recreate=False):
        """Connects once and creates the tables if missing.

        recreate (a full index) drops and creates them in the open transaction instead, so
        readers keep the previous rows until `save` commits.
        """
        if not self.database:
            self.engine, self.connection, self.database = self.connect()
            if not recreate and self.create:
                self.execute(SCHEMA)
                self.database.commit()
        if recreate:
            self.execute(f"DROP TABLE IF EXISTS {self.table}, {self.table}_postings, {self.table}_terms, {self.table}_stats")
            self.execute(SCHEMA)

    def connect(self):
        """(engine, connection, session) of its own, search_path set to `schema` when given."""
        engine = create_engine(self.config.get("url", os.environ.get("SCORING_URL")), poolclass=StaticPool)
        connection = engine.connect()
        session = Session(connection)
        schema = self.config.get("schema")
        if schema:
            session.execute(CreateSchema(schema, if_not_exists=True))
            session.execute(text("SELECT set_config('search_path', :path, false)"), {"path": f'"{schema}"'})
        return engine, connection, session

    def execute(self, sql, parameters=None):
        return self.database.execute(text(sql.format(t=self.table)), parameters)
