"""YAML workflows end to end: the shipped ones on a copy of data/, a custom one, the schedule, the API.

Real parts: the embedding model, FAISS, the embedded llama.cpp model (short answers), uvicorn.
One workspace and service for the module, so the models load once.
"""

import json
import shutil

import pytest
import yaml

from rag.config import load_config
from rag.ingest import Ingestor
from rag.service import LocalRAG
from rag.workflows import Scheduler, Workflows, list_workflows, run_workflow
from tests.conftest import ROOT, write_config
from tests.helpers import ApiServer

# The `workflow:` section shipped in config.yml (the last test checks that they are the same)
SHIPPED = """\
workflow:
  ingest:
    description: Sync the sources into the index (the same code as `rag ingest`)
    elements: ["*"]
    background: true
    tasks:
      - action: ingest

  ask:
    description: Answer a file of questions (one per line, or JSONL) with citations
    tasks:
      - action: questions
      - action: ask
      - action: jsonl
        args: {output: "${RAG_OUTPUT_DIR:-outputs}/answers.jsonl"}

  summarize:
    description: Summarize each document of a source into a Markdown report with sources
    elements: [docs]
    background: true
    tasks:
      - action: load
      - action: prompt
        args:
          field: summary
          template: "Summarize this document in two or three sentences.\\n\\nTitle: {title}\\n\\n{text}"
      - action: markdown
        args: {output: "${RAG_OUTPUT_DIR:-outputs}/summaries.md", title: Document summaries, field: summary}

  resync:
    description: Re-sync the sources every 30 minutes while `rag serve` runs
    schedule:
      cron: "*/30 * * * *"
      enabled: false
    elements: ["*"]
    tasks:
      - action: ingest
"""

# Workflows written for these tests: txtai pipelines, localrag steps, a Python function, schedules
CUSTOM = """\
  pipelines:
    segmentation: {paragraphs: true}
    llm: {method: rag.llm.LocalRAGGeneration}
  notes:
    description: Split notes into paragraphs and add them to the index
    tasks:
      - segmentation
      - action: upsert
  find:
    tasks:
      - action: search
        args: {limit: 3}
  forget:
    tasks: [delete]
  files:
    tasks: [load, chunk, upsert]
  reply:
    batch: 2
    tasks:
      - action: llm
        args: {maxlength: 12}
      - action: tests.test_workflows.shout
  lookup:
    tasks: [find]
  tick:
    schedule: {cron: "* * * * * *", iterations: 2}
    elements: [install]
    tasks:
      - action: search
        args: {limit: 1}
  broken:
    schedule: {every: 1s, iterations: 1}
    elements: [""]
    tasks: [search]
"""


def shout(texts):
    """A plain Python function as a workflow action: a batch in, a batch out."""
    return [text.upper() for text in texts]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A copy of data/ as source `docs`, the shipped workflows plus the custom ones."""
    folder = tmp_path_factory.mktemp("workflows")
    shutil.copytree(ROOT / "data", folder / "docs", ignore=shutil.ignore_patterns("_build"))
    write_config(folder, "  max_tokens: 48\n  temperature: 0.0\n" + SHIPPED + CUSTOM)
    return folder


@pytest.fixture(scope="module")
def service(folder):
    service = LocalRAG(load_config(folder / "config.yml"))
    yield service
    service.close()


@pytest.fixture(scope="module")
def ingested(service):
    return run_workflow(service, "ingest")


def test_ingest_workflow_is_rag_ingest(service, folder, ingested):
    (report,) = ingested
    assert report["counts"]["added"] == 15 and not report["failed"]
    assert report["documents"] == 15 and report["chunks"] > 15

    # `rag ingest` (the CLI runs Ingestor.run) finds the index the workflow wrote up to date
    again = Ingestor(service.config).run()
    assert again.counts()["unchanged"] == 15 and not again.changed and again.version == report["version"]

    # a path as input: only that file is looked at, like `rag ingest PATH`
    changed = folder / "docs" / "notes" / "changelog.txt"
    changed.write_text(changed.read_text(encoding="utf-8") + "\n0.2.0: workflows from YAML.\n", encoding="utf-8")
    (report,) = run_workflow(service, "ingest", [str(changed)])
    assert report["updated"] == ["docs:notes/changelog.txt"] and report["counts"]["unchanged"] == 0
    assert [hit.source for hit in service.search("workflows from YAML", limit=1)] == ["notes/changelog.txt"]
    assert Workflows(service).records.last("ingest")["status"] == "succeeded"


class Recorder:
    """Progress events of a run (the CLI draws bars from the same calls)."""

    def __init__(self):
        self.events = []

    def __getattr__(self, name):
        return lambda *args: self.events.append((name, *args))


def test_ask_workflow_answers_a_questions_file(service, folder, ingested):
    questions = folder / "questions.txt"
    questions.write_text("# one question per line\nHow do I install localrag?\n\nWhat does rag ingest do?\n", encoding="utf-8")
    progress = Recorder()
    results = run_workflow(service, "ask", [str(questions)], progress=progress)

    assert [r["question"] for r in results] == ["How do I install localrag?", "What does rag ingest do?"]
    for result in results:
        assert result["answer"].strip() and result["complete"] and result["found"]
        assert {"citations", "context"} <= result.keys()
    install = results[0]
    sources = [c["source"] for c in install["citations"] + install["context"]]
    assert "guide/installation.md" in sources
    assert all(c["label"] and c["snippet"] for c in install["citations"] + install["context"])

    written = [json.loads(line) for line in (folder / "outputs" / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    assert written == results
    assert ("start", "ask", 1) in progress.events and ("action", "ask", 2) in progress.events
    assert progress.events[-1] == ("finish", 2)

    # JSON lines with ids; the file is rewritten on each run
    jsonl = folder / "questions.jsonl"
    jsonl.write_text(json.dumps({"id": "q1", "question": "How do I back up the index?", "top_k": 2}) + "\n", encoding="utf-8")
    (answer,) = run_workflow(service, "ask", [str(jsonl)])
    assert answer["id"] == "q1" and answer["answer"] and len(answer["citations"] + answer["context"]) <= 2
    assert len((folder / "outputs" / "answers.jsonl").read_text(encoding="utf-8").splitlines()) == 1


def test_summarize_workflow_writes_a_markdown_report(service, folder, ingested):
    inputs = [str(folder / "docs" / "notes"), str(folder / "docs" / "reference" / "glossary.html")]
    results = run_workflow(service, "summarize", inputs)

    assert [r["id"] for r in results] == ["docs:notes/changelog.txt", "docs:reference/glossary.html"]
    assert all(r["summary"].strip() for r in results)
    report = (folder / "outputs" / "summaries.md").read_text(encoding="utf-8")
    assert report.startswith("# Document summaries\n")
    for result in results:
        assert f"## {result['title']}\n\n{result['summary']}" in report
        assert f"Source: `{result['id']}`" in report
    assert results[0]["report"] == str(folder / "outputs" / "summaries.md")


def test_custom_workflow_from_test_config(service, ingested):
    notes = "Zebras sleep standing up in the savanna.\n\nThe octopus has three hearts and blue blood."
    assert run_workflow(service, "notes", [notes]) == notes.split("\n\n")

    (found,) = run_workflow(service, "find", ["how many hearts does an octopus have"])
    top = found["hits"][0]
    assert top["text"] == "The octopus has three hearts and blue blood." and top["document"].startswith("workflow:")
    # a workflow used as an action
    assert run_workflow(service, "lookup", ["zebra sleeping"])[0]["hits"][0]["text"].startswith("Zebras sleep")

    # delete what was upserted; it is gone from search and from the documents
    (deleted,) = run_workflow(service, "forget", [top["document"]])
    assert deleted["chunks_removed"] == 1
    assert top["document"] not in [d.id for d in service.documents()]
    assert run_workflow(service, "forget", ["workflow:nothing"]) == [{"id": "workflow:nothing", "error": "not found"}]

    # load -> chunk -> upsert gives the chunks `rag ingest` made: same ids and text
    before = {hit.id: hit.text for hit in service.search("back up the index", limit=20, where="document = 'docs:guide/troubleshooting.md'")}
    chunks = run_workflow(service, "files", ["docs/guide/troubleshooting.md"])
    assert {c["id"] for c in chunks} >= set(before) and all(c["document"] == "docs:guide/troubleshooting.md" for c in chunks)
    after = {hit.id: hit.text for hit in service.search("back up the index", limit=20, where="document = 'docs:guide/troubleshooting.md'")}
    assert after == before
    assert Ingestor(service.config).run().counts()["unchanged"] == 15  # manifest kept consistent

    # a txtai pipeline (LLM over the configured model) then a Python function
    replies = run_workflow(service, "reply", ["Say hello.", "Name a colour.", "Count to three."])
    assert len(replies) == 3 and all(r.strip() and r == r.upper() for r in replies)


def test_schedule_fires_and_is_recorded(service, ingested):
    scheduler = Scheduler(service)
    assert {spec.name for spec in scheduler.scheduled()} == {"tick", "broken"}  # resync is disabled
    assert scheduler.start()
    thread = scheduler.thread
    thread.join(30)  # the loop ends once every schedule has used its iterations
    finished = not thread.is_alive()
    scheduler.stop()
    assert finished and scheduler.fired == {"tick": 2, "broken": 1}

    workflows = scheduler.workflows
    runs = workflows.history("tick")
    assert len(runs) == 2 and all(r["trigger"] == "schedule" and r["status"] == "succeeded" for r in runs)
    assert all(r["results"] == 1 for r in runs)
    broken = workflows.describe("broken")["last_run"]
    assert broken["status"] == "failed" and broken["error"] == "SearchError: empty query"


@pytest.fixture(scope="module")
def api(service):
    """The whole app over the test's service on a real uvicorn server."""
    server = ApiServer(service.config, rag=service).start()
    with server.client(None) as client:
        yield client
    server.stop()


def test_api_lists_and_runs_workflows(api, service, ingested):
    answered = api.post("/workflows/ask", json={"elements": ["How do I install localrag?"]})
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["run"]["status"] == "succeeded" and body["run"]["trigger"] == "api"
    assert body["results"][0]["question"] == "How do I install localrag?" and body["results"][0]["answer"]

    listed = {w["name"]: w for w in api.get("/workflows").json()["workflows"]}
    assert {"ingest", "ask", "summarize", "resync", "notes"} <= set(listed)
    assert listed["ask"]["last_run"]["status"] == "succeeded" and listed["ask"]["last_run"]["id"] == body["run"]["id"]
    assert [t["action"] for t in listed["ask"]["tasks"]] == ["questions", "ask", "jsonl"]
    assert listed["resync"]["schedule"] == {"cron": "*/30 * * * *", "every": None, "enabled": False, "iterations": None}

    # long runs: a job id (ingest is background by default), polled through the jobs of the service
    started = api.post("/workflows/ingest", json={})
    assert started.status_code == 202 and started.headers["location"] == f"/jobs/{started.json()['job']['id']}"
    job = service.jobs.wait(started.json()["job"]["id"], timeout=120)
    assert job["state"] == "succeeded", job
    assert job["result"]["results"][0]["counts"]["unchanged"] == 15
    assert api.get("/workflows/ingest").json()["runs"][0]["trigger"] == "api"

    assert api.post("/workflows/nope", json={}).status_code == 404
    missing = api.post("/workflows/ask", json={})
    assert missing.status_code == 422 and "needs inputs" in missing.json()["error"]["message"]
    outside = api.post("/workflows/summarize", json={"elements": [str(ROOT / "config.yml")], "background": False})
    assert outside.status_code == 422 and "outside the configured sources" in outside.json()["error"]["message"]


def test_listing_for_the_cli(service, ingested):
    listed = {w["name"]: w for w in list_workflows(service)}
    assert listed["ingest"]["description"].startswith("Sync the sources")
    assert listed["ingest"]["last_run"]["status"] == "succeeded"
    assert listed["tick"]["schedule"]["next_run"] and listed["resync"]["schedule"]["enabled"] is False


def test_config_yml_ships_these_workflows():
    shipped = yaml.safe_load(SHIPPED)["workflow"]
    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    assert config.get("workflow") == shipped, "config.yml must ship the workflow section tested here"
