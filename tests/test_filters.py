"""The filter language: what it accepts, what it refuses (attacks included), and that filters
select the right passages on a real index, in the library and over HTTP with a read key."""

import time

import pytest

from rag.config import load_config
from rag.filters import MAX_TERMS, Filter, FilterError, combine
from rag.search import SearchError
from rag.service import LocalRAG
from tests.helpers import READ_KEY, assert_error


@pytest.mark.parametrize(
    "where, text, parameters",
    [
        ("filetype = 'pdf'", "filetype = :w0", {"w0": "pdf"}),
        ("page <= 3 and not filetype = 'md'", "(page <= :w0 AND NOT filetype = :w1)", {"w0": 3, "w1": "md"}),
        ("source IN ('a.md', 'it''s.md')", "source IN (:w0, :w1)", {"w0": "a.md", "w1": "it's.md"}),
        ("source not like 'guide/%'", "source NOT LIKE :w0", {"w0": "guide/%"}),
        ("page is not null or chunk between 1 and 2.5", "(page IS NOT NULL OR chunk BETWEEN :w0 AND :w1)", {"w0": 1, "w1": 2.5}),
        ("Source = 'x; drop table'", "source = :w0", {"w0": "x; drop table"}),
    ],
)
def test_the_language_compiles_to_sql_with_bound_values(where, text, parameters):
    condition = Filter.parse(where)
    assert (condition.text, condition.parameters) == (text, parameters)


@pytest.mark.parametrize(
    "where, says",
    [
        ("similar('backup', 10000000)", "unknown column 'similar'"),  # candidate count set by the client
        ("0=1) or (length(printf('%.*c', 200000000 + chunk, 'x')) < 0", "unexpected"),  # escaping the parentheses
        ("text like '%x%'", "unknown column 'text'"),
        ("source = = 'x'", "position 10"),
        ("source = 'x'; delete from documents", "unexpected ';"),
        ("source = (select 1)", "expected string or number"),
        ("(" * 11 + "page = 1" + ")" * 11, "nested parentheses"),
        (" or ".join(["page = 1"] * (MAX_TERMS + 1)), f"more than {MAX_TERMS} comparisons"),
        ("page = 1 or " * 400 + "page = 2", "longer than"),
    ],
)
def test_anything_else_is_refused_with_a_message_that_says_where(where, says):
    with pytest.raises(FilterError, match="where") as error:
        Filter.parse(where)
    assert says in str(error.value)


def test_structured_filters_and_where_combine_with_distinct_parameters():
    condition = combine("page > 2", {"collection": "docs", "filetype": ["md", None]})
    assert condition.text == "(page > :w0) AND ((collection IN (:w1)) AND (filetype IN (:w2) OR filetype IS NULL))"
    assert condition.parameters == {"w0": 2, "w1": "docs", "w2": "md"}
    with pytest.raises(FilterError, match="unknown column"):
        Filter.of({"password": "x"})
    assert combine(None, None) is None and combine("  ", {}) is None


def test_a_megabyte_of_filter_is_refused_at_once():
    started = time.perf_counter()
    with pytest.raises(FilterError):
        Filter.parse("page = 1 or " * 100_000)
    with pytest.raises(FilterError):
        Filter.of({"source": ["x"] * 1_000_000})
    assert time.perf_counter() - started < 1  # refused before any work proportional to the input


def test_filters_select_passages_of_a_real_index(workspace):
    rag = LocalRAG(load_config(workspace / "config.yml"))
    rag.ingest()
    sources = lambda **kwargs: {hit.source for hit in rag.search("install backup giraffe", limit=10, **kwargs)}  # noqa: E731
    assert sources(where="filetype = 'txt'") == {"notes.txt"}
    assert sources(where="source not in ('notes.txt') and filetype = 'md'") == {"install.md", "backup.md"}
    assert sources(filters={"source": ["backup.md", "notes.txt"]}, where="filetype = 'md'") == {"backup.md"}
    assert sources(where="title = 'it''s; not here'") == set()
    with pytest.raises(SearchError, match="unknown column 'similar'"):
        rag.search("backup", where="similar('backup', 10000000)")
    with pytest.raises(SearchError, match="limit must be between 1 and"):
        rag.search("backup", limit=-5)


@pytest.fixture(scope="module")
def server(serve):
    return serve()


def test_a_read_key_cannot_reach_sql_through_where(server):
    with server.client(READ_KEY) as client:
        started = time.perf_counter()
        for where in ("similar('backup', 10000000)", "0=1) or (length(printf('%.*c', 200000000 + chunk, 'x')) < 0"):
            assert_error(client.post("/search", json={"query": "backup", "where": where}), 400, "search_error")
        assert time.perf_counter() - started < 5  # refused, not run
        assert_error(client.post("/search", json={"query": "backup", "where": "x" * 1_000_000}), 422, "validation_error")
        quoted = client.post("/search", json={"query": "backup", "filters": {"source": "it's; odd.md"}})
        assert quoted.status_code == 200 and quoted.json()["hits"] == []
        found = client.post("/search", json={"query": "backup", "where": "source like 'guide/%'"}).json()["hits"]
        assert found and all(hit["source"].startswith("guide/") for hit in found)
