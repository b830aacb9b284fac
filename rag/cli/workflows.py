"""`rag workflow list|run`: the named workflows of config.yml from the command line."""

import json

import typer
from rich.table import Table

from .app import FILES_FAILED, LOCKED, UNAVAILABLE, UNWRITABLE, USAGE, app, console, emit, fail, out, service

workflow_app = typer.Typer(no_args_is_help=True, help="Named workflows of config.yml (`workflow:` section).")
app.add_typer(workflow_app, name="workflow")


@workflow_app.command("list")
def workflow_list(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """Workflows with their tasks, schedule and last run."""
    workflows = service().workflows.listing()
    if as_json:
        emit(workflows)
        return
    table = Table()
    for column in ("workflow", "tasks", "schedule", "last run"):
        table.add_column(column, overflow="fold")
    for flow in workflows:
        tasks = " → ".join(", ".join(a) if isinstance(a := t.get("action") or t.get("task", "?"), list) else str(a) for t in flow["tasks"])
        schedule = flow["schedule"]
        when = "" if not schedule else (schedule["cron"] or f"every {schedule['every']:g}s") + ("" if schedule["enabled"] else " (disabled)")
        last = flow["last_run"]
        ran = f"{last['status']} {last['started_at']} ({last['trigger']})" if last else "never"
        table.add_row(f"{flow['name']}\n{flow['description']}", tasks, when, ran)
    out.print(table)


@workflow_app.command("run")
def workflow_run(
    name: str = typer.Argument(..., help="Workflow name (rag workflow list)."),
    inputs: list[str] = typer.Argument(None, help="Input elements: paths, questions, ... (default: the workflow's `elements:`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as one JSON array."),
):
    """Run a workflow; results are printed one JSON line each (or as JSON with --json)."""
    from ..llm.errors import LLMError
    from ..store import IndexLocked, IndexUnwritable
    from ..workflows import UnknownWorkflow, WorkflowError
    from .progress import WorkflowBar

    rag = service()
    bar = WorkflowBar(console, enabled=not as_json and console.is_terminal)
    try:
        with bar:
            outcome = rag.workflows.execute(name, inputs or None, progress=bar, trigger="cli")
    except (UnknownWorkflow, WorkflowError) as error:
        fail(error, USAGE)
    except IndexLocked as error:
        fail(error, LOCKED)
    except IndexUnwritable as error:
        fail(error, UNWRITABLE)
    except LLMError as error:
        fail(error, UNAVAILABLE)
    except Exception as error:  # recorded in the run; shown here
        fail(f"{type(error).__name__}: {error}", FILES_FAILED, label=f"workflow {name} failed")
    finally:
        rag.close()

    if as_json:
        emit(outcome["results"])
    else:
        for result in outcome["results"]:
            out.print(result if isinstance(result, str) else json.dumps(result, ensure_ascii=False), highlight=False, markup=False, soft_wrap=True)
        run = outcome["run"]
        console.print(f"workflow {name}: {run['results']} result(s) in {run['seconds']:.1f}s" + "".join(f" · wrote {p}" for p in run["outputs"]), highlight=False)
