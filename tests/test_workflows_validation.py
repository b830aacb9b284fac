"""The `workflow:` section is checked before anything runs: errors name the workflow and the task."""

import textwrap

import pytest
import yaml

from rag.config import load_config
from rag.workflows import Scheduler, WorkflowError, parse
from rag.workflows.spec import Schedule
from tests.conftest import write_config


def section(text: str) -> dict:
    return yaml.safe_load(textwrap.dedent(text))


def error_of(text: str) -> str:
    with pytest.raises(WorkflowError) as caught:
        parse(section(text))
    return str(caught.value)


def test_unknown_action_names_workflow_task_and_the_choices():
    message = error_of(
        """
        digest:
          tasks:
            - load
            - action: summarise
        """
    )
    assert message.startswith("workflow 'digest', task 2: unknown action 'summarise'")
    assert "prompt" in message and "upsert" in message  # lists what exists


def test_bad_cron_expression():
    message = error_of(
        """
        nightly:
          schedule: {cron: "61 * * * *"}
          tasks: [ingest]
        """
    )
    assert "workflow 'nightly'" in message and "invalid cron expression '61 * * * *'" in message


def test_cron_needs_five_or_six_fields_and_one_kind_of_schedule():
    assert "invalid cron" in error_of("w: {schedule: {cron: '* * *'}, tasks: [ingest]}")
    assert "exactly one of" in error_of("w: {schedule: {cron: '* * * * *', every: 5m}, tasks: [ingest]}")
    assert "invalid schedule interval 'soon'" in error_of("w: {schedule: {every: soon}, tasks: [ingest]}")


def test_txtai_pipeline_that_is_not_declared():
    message = error_of(
        """
        digest:
          tasks:
            - load
            - action: summary
        """
    )
    assert message.startswith("workflow 'digest', task 2: action 'summary' is a txtai pipeline that is not declared")
    assert "workflow.pipelines" in message


def test_declared_pipeline_is_accepted_and_unknown_pipeline_is_not():
    parsed = parse(section("pipelines: {segmentation: {paragraphs: true}}\nsplit: {tasks: [segmentation]}"))
    assert parsed.pipelines == {"segmentation": {"paragraphs": True}}
    assert "not a txtai pipeline" in error_of("pipelines: {sumary: {}}\nw: {tasks: [load]}")


def test_action_arguments_are_checked_against_the_action():
    message = error_of("w: {tasks: [{action: jsonl, args: {outptu: x.jsonl}}]}")
    assert message == "workflow 'w', task 1: unknown argument(s) outptu for action 'jsonl'; accepted: output"
    assert "needs argument(s) output" in error_of("w: {tasks: [jsonl]}")


def test_python_paths_must_import():
    message = error_of("w: {tasks: [load, load, {action: mypackage.steps.clean}]}")
    assert message.startswith("workflow 'w', task 3: action 'mypackage.steps.clean': cannot import")


def test_other_mistakes_name_the_workflow():
    assert "unknown key(s) task" in error_of("w: {task: [load]}")
    assert "non-empty list" in error_of("w: {tasks: []}")
    assert "unknown task type 'fancy'" in error_of("w: {tasks: [{task: fancy, action: load}]}")
    assert "is this workflow itself" in error_of("w: {tasks: [w]}")
    assert "loop: a -> b -> a" in error_of("a: {tasks: [b]}\nb: {tasks: [a]}")
    assert "upsert" in error_of("w: {tasks: [index]}")  # txtai's own index action does not apply


def test_invalid_section_stops_the_service(tmp_path):
    from rag.service import LocalRAG
    from rag.workflows import workflows_of

    write_config(tmp_path, "workflow:\n  digest:\n    tasks: [load, summarise]\n")
    with pytest.raises(WorkflowError, match="workflow 'digest', task 2: unknown action 'summarise'"):
        workflows_of(LocalRAG(load_config(tmp_path / "config.yml")))


def test_schedule_forms_and_disabled_flag(tmp_path):
    write_config(
        tmp_path,
        """\
        workflow:
          resync:
            schedule: {cron: "*/30 * * * *", enabled: false}
            elements: ["*"]
            tasks: [ingest]
          fast:
            schedule: {cron: "* * * * * */2"}
            tasks: [ingest]
          every:
            schedule: {every: 90s, enabled: "${FLAG:-false}"}
            tasks: [ingest]
        """,
    )
    workflows = parse(load_config(tmp_path / "config.yml", environ={}).workflow).workflows
    assert workflows["resync"].schedule.enabled is False
    assert workflows["every"].schedule.every == 90 and workflows["every"].schedule.enabled is False
    # six fields: seconds last (croniter)
    start = 1_700_000_001.0
    assert workflows["fast"].schedule.next(start) - start <= 2
    assert Schedule(cron="*/30 * * * *").next(start) - start <= 30 * 60

    # the documented switch: an environment override turns the schedule on
    enabled = load_config(tmp_path / "config.yml", environ={"RAG_WORKFLOW__RESYNC__SCHEDULE__ENABLED": "true"})
    assert parse(enabled.workflow).workflows["resync"].schedule.enabled is True


def test_scheduler_does_not_start_without_enabled_schedules(tmp_path):
    from rag.service import LocalRAG

    write_config(tmp_path, "workflow:\n  resync:\n    schedule: {cron: '*/30 * * * *', enabled: false}\n    tasks: [ingest]\n")
    scheduler = Scheduler(LocalRAG(load_config(tmp_path / "config.yml")))
    assert scheduler.start() is False
    assert scheduler.thread is None
