"""Workflows over HTTP: list them with their schedule and last run, run one inline or as a job.

    GET  /workflows                 {"workflows": [{name, description, tasks, schedule, running, last_run}]}
    GET  /workflows/{name}          one workflow with its recent runs
    POST /workflows/{name}          {"elements": [...], "background": null}
         -> 200 {"workflow", "run", "results"}, or 202 {"workflow", "job"} (poll GET /jobs/{id})

Inputs that name files must lie under the configured sources or the uploads folder. Errors map to
statuses in api/errors.py: no such workflow 404, an invalid run request 422, a run of it or an
ingest already in progress 409, the LLM unavailable 503.
"""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field, StrictBool

from rag.workflows import Workflows

from ..auth import READ, WRITE
from ..limits import checked
from ..schemas import ERRORS, ErrorResponse, Request as Body

router = APIRouter(tags=["workflows"])

MAX_ELEMENTS = 1_000  # inputs of one run
NOT_FOUND = {404: {"model": ErrorResponse, "description": "No workflow of that name in config.yml"}}


class RunRequest(Body):
    elements: list[Any] | None = Field(
        None, max_length=MAX_ELEMENTS, description="Inputs of the run; default: the workflow's `elements:`."
    )
    background: StrictBool | None = Field(
        None, description="Run as a background job and answer 202 with its id; default: the workflow's `background:`."
    )


def workflows(request: Request) -> Workflows:
    """The Workflows of the app's LocalRAG service."""
    return request.app.state.rag.workflows


@router.get("/workflows", dependencies=[READ], summary="The workflows of config.yml", responses=ERRORS)
def list_workflows(request: Request) -> dict:
    """Every workflow of config.yml: tasks, schedule (next run when enabled), last run and its status."""
    return {"workflows": workflows(request).listing()}


@router.get("/workflows/{name}", dependencies=[READ], summary="One workflow and its recent runs", responses={**ERRORS, **NOT_FOUND})
def show_workflow(name: str, request: Request) -> dict:
    """One workflow and its recent runs, newest first."""
    flows = workflows(request)
    return {**flows.describe(name), "runs": flows.history(name)}


@router.post(
    "/workflows/{name}",
    dependencies=[WRITE],
    summary="Run a workflow",
    responses={
        **ERRORS,
        **NOT_FOUND,
        202: {"description": "Started as a background job"},
        409: {"model": ErrorResponse, "description": "The workflow is already running, or another writer holds the index"},
        422: {"model": ErrorResponse, "description": "Invalid inputs (e.g. none and no default, a file outside the sources)"},
        503: {"model": ErrorResponse, "description": "The LLM backend is unavailable"},
    },
)
def run_workflow(name: str, request: Request, body: RunRequest = checked(RunRequest, optional=True)):
    """Runs a workflow with `elements` (or its default ones): the results, or a job id for background runs."""
    flows = workflows(request)
    background = flows.spec(name).background if body.background is None else body.background
    if background:
        job = flows.submit(name, body.elements, trigger="api")
        return JSONResponse({"workflow": name, "job": job}, status_code=202, headers={"Location": f"/jobs/{job['id']}"})
    return flows.execute(name, body.elements, trigger="api", confined=True)
