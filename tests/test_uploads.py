"""Uploads as an attacker and as a careful user would try them, over real HTTP with the write key:
names are kept (Unicode included) and never collide silently, concurrent uploads never mix, and no
request can make the server delete a file outside the uploads folder."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from rag.service import safe_name
from tests.helpers import assert_error, wait_job


@pytest.fixture(scope="module")
def server(serve):
    return serve()


@pytest.fixture
def api(server):
    with server.client() as client:
        yield client


def upload(api, name: str, data: bytes, wait: bool = True):
    return api.post("/documents", params={"wait": str(wait).lower()}, files=[("files", (name, data, "text/markdown"))])


def test_unicode_names_are_kept_and_distinct(api, server):
    names = ["résumé.md", "r#sum#.md", "日本.md", "中国.md"]
    for number, name in enumerate(names):
        response = upload(api, name, f"# Note {number}\n\nUnique marker word quokka{number}.\n".encode())
        assert response.status_code == 200, response.text
        assert response.json()["files"][0]["name"] == name
    listed = {document["source"] for document in api.get("/documents", params={"collection": "uploads"}).json()["documents"]}
    assert set(names) <= listed
    for number, name in enumerate(names):
        assert (server.rag.uploads / name).read_text(encoding="utf-8").endswith(f"quokka{number}.\n")
    # the decomposed form of résumé is the same name: it replaces, it does not add a look-alike
    decomposed = "re\u0301sume\u0301.md"
    assert upload(api, decomposed, b"# Again\n\nquokka9\n").json()["files"][0]["name"] == "résumé.md"


@pytest.mark.parametrize("name", ["a" * 300 + ".md", "日本" * 50 + ".md", ".hidden.md", "..", ""])
def test_names_the_filesystem_cannot_hold_are_refused_with_422(api, server, name):
    before = sorted(p.name for p in server.rag.uploads.iterdir())
    response = upload(api, name, b"# x\n\ny\n")
    assert response.status_code == 422, response.text
    assert sorted(p.name for p in server.rag.uploads.iterdir()) == before


def test_concurrent_uploads_of_one_name_never_mix(api, server):
    contents = [f"# Version {n}\n\n".encode() + bytes([65 + n]) * 20_000 + b"\n" for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda data: upload(api, "race.md", data, wait=False), contents))
    assert all(response.status_code == 202 for response in responses), [(r.status_code, r.text[-300:]) for r in responses if r.status_code != 202]
    for response in responses:
        assert wait_job(api, response.json()["job"]["id"])["state"] == "succeeded"
    assert (server.rag.uploads / "race.md").read_bytes() in contents  # one whole upload, not a mix
    assert not [p for p in server.rag.uploads.iterdir() if p.name.startswith(".")]  # no temp files left


def test_a_workflow_cannot_plant_an_upload_that_deletes_files_outside(api, server, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    config = server.rag.config.root / "config.yml"
    for source in (str(victim), "../config.yml"):
        element = {"id": "uploads:x", "collection": "uploads", "source": source, "text": "planted"}
        with pytest.raises(ValueError, match="reserved"):
            server.rag.upsert([("uploads:x#0000", {**element, "document": f"uploads:{source}", "chunk": 0})])
        assert_error(api.delete(f"/documents/uploads:{source}"), 404)
    assert victim.read_text() == "keep me" and config.is_file()


def test_safe_name_keeps_the_last_path_part():
    assert safe_name("../../etc/passwd.md") == "passwd.md"
    assert safe_name("..\\..\\win.md") == "win.md"
    assert safe_name("Ünïcode name.md") == "Ünïcode name.md"
    for name in ("bell\x07.md", "nul\x00.md", "a" * 256):
        with pytest.raises(ValueError):
            safe_name(name)


def test_a_burst_of_uploads_is_ingested_together_as_one_version(api, server):
    names = [f"burst{n}.md" for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda n: upload(api, names[n], f"# Burst {n}\n\nThe okapi note number burst{n}.\n".encode(), wait=False), range(8)))
    jobs = [wait_job(api, response.json()["job"]["id"]) for response in responses]
    assert all(job["state"] == "succeeded" for job in jobs), jobs
    versions = {job["result"]["version"] for job in jobs}
    assert len(versions) <= 2, f"8 queued uploads published {len(versions)} versions"  # the first may run alone
    added = {document for job in jobs for document in job["result"]["added"]}
    assert added == {f"uploads:{name}" for name in names}
    for name in names:
        hits = api.post("/search", json={"query": f"okapi note {name[:-3]}", "mode": "keyword", "limit": 3}).json()["hits"]
        assert f"uploads:{name}" in {hit["document"] for hit in hits}
