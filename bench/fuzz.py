"""Fuzzes the HTTP API from its OpenAPI schema with schemathesis, as a read key and as a write key.

    make fuzz                                   # or: .venv/bin/python bench/fuzz.py [--examples 100]

Starts the real app (embedded LLM, so answers work) on 127.0.0.1:<random port> against a throwaway
workspace (tests/helpers.make_workspace, plus workflows that search, ask, upsert, delete
and ingest), runs `schemathesis run` once per key (every phase and check; path parameters are drawn
from the real workflow names and document ids most of the time), prints the cases and the failures
by kind, and exits 1 when any response was a server error (a 5xx other than the documented 503/504
of an unavailable or slow LLM) or a request got no answer.

Failures of other kinds are figures, not errors: e.g. ST202 "schema-valid request rejected" is a
`where` the filter language refuses (400) or a path outside the sources (422).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.helpers import ADMIN_KEY, READ_KEY, ApiServer, make_workspace  # noqa: E402

# 503/504: the LLM unavailable or timed out, documented on the answer routes; anything else 5xx is a bug
SETTINGS = """\
[checks.not_a_server_error]
expected-statuses = ["2XX", "3XX", "4XX", "503", "504"]

[dictionaries.workflows]
values = {workflows}

[dictionaries.documents]
values = {documents}

[[operations]]
include-path-regex = "^/workflows/"
parameters = {{ "path.name" = {{ dictionary = "workflows", probability = 0.8 }} }}

[[operations]]
include-path-regex = "^/documents/"
parameters = {{ "path.id" = {{ dictionary = "documents", probability = 0.8 }} }}
"""
WORKFLOWS = """\
workflow:
  find:
    tasks:
      - action: search
        args: {limit: 3}
  ask:
    tasks:
      - action: questions
      - action: ask
  notes:
    tasks:
      - action: chunk
      - action: upsert
  forget:
    tasks:
      - action: delete
  sync:
    elements: ["*"]
    background: true
    tasks:
      - action: ingest
"""
SERVER_ERRORS = {"ServerError", "ContentTypeServerError"}  # schemathesis failure types of a 5xx


def fuzz(server: ApiServer, key: str, examples: int, folder: Path, seed: int) -> dict:
    """One schemathesis run; its JSON report."""
    settings = folder / "schemathesis.toml"
    workflows = server.rag.workflows.names()
    documents = [document.id for document in server.rag.documents()]
    settings.write_text(SETTINGS.format(workflows=json.dumps(workflows), documents=json.dumps(documents)), encoding="utf-8")
    url = server.url
    report = folder / f"report-{len(list(folder.glob('report-*')))}.json"
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file", str(settings),
        "run", f"{url}/openapi.json",
        "--header", f"Authorization: Bearer {key}",
        "--checks", "all",
        "--max-examples", str(examples),
        "--seed", str(seed),
        "--workers", "2",
        "--request-timeout", "120",
        "--generation-database", "none",
        "--report", "json", "--report-json-path", str(report),
        "--no-color",
    ]  # fmt: skip
    with open(folder / "schemathesis.log", "a", encoding="utf-8") as log:  # the failures with curl lines to replay them
        subprocess.run(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    return json.loads(report.read_text(encoding="utf-8"))


def summary(report: dict, seconds: float) -> dict:
    """Cases, failures by kind (code and title: count), network errors, server errors."""
    failures = {f"{item['code']} {item['title']}": item["count"] for item in report["failures"]}
    server = sum(item["count"] for item in report["failures"] if item["type"] in SERVER_ERRORS)
    operations = sorted({operation for item in report["failures"] if item["type"] in SERVER_ERRORS for operation in item["operations"]})
    return {
        "cases": report["test_cases"]["generated"],
        "operations": report["operations"]["tested"],
        "failures": failures,
        "errors": len(report["errors"]),
        "server_errors": server,
        "server_error_operations": operations,
        "seconds": round(seconds, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50, help="cases per operation and phase (schemathesis --max-examples)")
    parser.add_argument("--seed", type=int, default=20261124)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="localrag-fuzz-"))
    config = make_workspace(folder / "workspace")
    config.write_text(config.read_text(encoding="utf-8") + WORKFLOWS, encoding="utf-8")
    server = ApiServer(config).start()
    figures = {}
    try:
        for scope, key in (("read", READ_KEY), ("write", ADMIN_KEY)):
            started = time.monotonic()
            figures[scope] = summary(fuzz(server, key, args.examples, folder, args.seed), time.monotonic() - started)
    finally:
        server.stop()
    print(json.dumps(figures, indent=2))
    server = sum(figure["server_errors"] + figure["errors"] for figure in figures.values())
    cases = sum(figure["cases"] for figure in figures.values())
    print(f"fuzz: {cases} cases, {server} server or network errors (details: {folder / 'schemathesis.log'})")
    return 1 if server else 0


if __name__ == "__main__":
    sys.exit(main())
