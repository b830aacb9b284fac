"""Workflows over HTTP: list them with their schedule and last run, run one inline or as a job.

    GET  /workflows                 {"workflows": [{name, description, tasks, schedule, running, last_run}]}
    GET  /workflows/{name}          one workflow with its recent runs
    POST /workflows/{name}          {"elements": [...], "background": null}
         -> 200 {"workflow", "run", "results"}, or 202 {"workflow", "job"} (poll GET /jobs/{id})

Inputs that name files must lie under the configured sources or the uploads folder.
"""

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from rag.llm.errors import LLMError
from rag.search import SearchError
from rag.store import IndexLocked
from rag.workflows import Busy, UnknownWorkflow, WorkflowError, Workflows, workflows_of

router = APIRouter(tags=["workflows"])


class RunRequest(BaseModel):
    elements: list[Any] | None = Field(None, description="Inputs of the run; default: the workflow's `elements:`.")
    background: bool | None = Field(
        None, description="Run as a background job and answer 202 with its id; default: the workflow's `background:`."
    )


def workflows(request: Request) -> Workflows:
    """The Workflows of the app's LocalRAG service (app.state.rag, or app.state.service)."""
    state = request.app.state
    service = getattr(state, "rag", None) or getattr(state, "service", None)
    if service is None:
        raise RuntimeError("the app has no LocalRAG service in app.state.rag")
    return workflows_of(service)


@router.get("/workflows")
def list_workflows(request: Request) -> dict:
    """Every workflow of config.yml: tasks, schedule (next run when enabled), last run and its status."""
    return {"workflows": workflows(request).listing()}


@router.get("/workflows/{name}")
def show_workflow(name: str, request: Request) -> dict:
    """One workflow and its recent runs, newest first."""
    flows = workflows(request)
    try:
        return {**flows.describe(name), "runs": flows.history(name)}
    except UnknownWorkflow as error:
        raise HTTPException(404, str(error)) from None


@router.post("/workflows/{name}", responses={202: {"description": "Started as a background job"}})
def run_workflow(name: str, request: Request, body: RunRequest | None = None):
    """Runs a workflow with `elements` (or its default ones): the results, or a job id for background runs."""
    flows = workflows(request)
    body = body or RunRequest()
    try:
        background = flows.spec(name).background if body.background is None else body.background
        if background:
            job = flows.submit(name, body.elements, trigger="api")
            return JSONResponse({"workflow": name, "job": job}, status_code=202, headers={"Location": f"/jobs/{job['id']}"})
        return flows.execute(name, body.elements, trigger="api", confined=True)
    except UnknownWorkflow as error:
        raise HTTPException(404, str(error)) from None
    except WorkflowError as error:
        raise HTTPException(422, str(error)) from None
    except (Busy, IndexLocked) as error:
        raise HTTPException(409, str(error)) from None
    except LLMError as error:
        raise HTTPException(503, f"{type(error).__name__}: {error}") from None
    except SearchError as error:
        raise HTTPException(400, str(error)) from None
    except Exception as error:  # recorded as the run's error; the client gets its message
        raise HTTPException(500, f"workflow {name!r} failed: {type(error).__name__}: {error}") from None
