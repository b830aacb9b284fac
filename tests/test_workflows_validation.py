"""The `workflow:` section is checked with the rest of config.yml: errors name the key, down to the task."""

import textwrap

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.config import ConfigError, load_config
from rag.workflows import Scheduler
from rag.workflows.spec import Schedule
from tests.conftest import write_config


def with_section(folder, text: str, extra: str = ""):
    """A config.yml in folder whose `workflow:` section is text."""
    return write_config(folder, extra + "workflow:\n" + textwrap.indent(textwrap.dedent(text), "  "))


@pytest.fixture
def error_of(tmp_path):
    """The ConfigError message of a `workflow:` section."""

    def load(text: str, environ=None) -> str:
        with pytest.raises(ConfigError) as caught:
            load_config(with_section(tmp_path, text), environ=environ or {})
        return str(caught.value)

    return load


def test_unknown_action_names_workflow_task_and_the_choices(error_of, tmp_path):
    message = error_of(
        """
        digest:
          tasks:
            - load
            - action: summarise
        """
    )
    assert message.startswith(f"{tmp_path / 'config.yml'}: workflow.digest.tasks.1.action: unknown action 'summarise'")
    assert "prompt" in message and "upsert" in message  # lists what exists


def test_bad_cron_expression(error_of):
    message = error_of(
        """
        nightly:
          schedule: {cron: "61 * * * *"}
          tasks: [ingest]
        """
    )
    assert "workflow.nightly.schedule.cron: invalid cron expression '61 * * * *'" in message


def test_cron_needs_five_or_six_fields_and_one_kind_of_schedule(error_of):
    assert "invalid cron" in error_of("w: {schedule: {cron: '* * *'}, tasks: [ingest]}")
    assert "exactly one of" in error_of("w: {schedule: {cron: '* * * * *', every: 5m}, tasks: [ingest]}")
    assert "invalid schedule interval 'soon'" in error_of("w: {schedule: {every: soon}, tasks: [ingest]}")
    assert "workflow.w.schedule.every: schedule interval 0.5 is below one second" in error_of("w: {schedule: {every: 0.5}, tasks: [ingest]}")


def test_txtai_pipeline_that_is_not_declared(error_of):
    message = error_of(
        """
        digest:
          tasks:
            - load
            - action: summary
        """
    )
    assert ": workflow.digest.tasks.1.action: action 'summary' is a txtai pipeline that is not declared" in message
    assert "workflow.pipelines" in message


def test_declared_pipeline_is_accepted_and_unknown_pipeline_is_not(tmp_path, error_of):
    config = load_config(with_section(tmp_path, "pipelines: {segmentation: {paragraphs: true}}\nsplit: {tasks: [segmentation]}"), environ={})
    assert config.workflow.pipelines == {"segmentation": {"paragraphs": True}}
    assert "workflow.pipelines.sumary: not a txtai pipeline" in error_of("pipelines: {sumary: {}}\nw: {tasks: [load]}")


def test_action_arguments_are_checked_against_the_action(error_of, tmp_path):
    message = error_of("w: {tasks: [{action: jsonl, args: {outptu: x.jsonl}}]}")
    assert message == f"{tmp_path / 'config.yml'}: workflow.w.tasks.0.args: unknown argument(s) outptu for action 'jsonl'; accepted: output"
    assert "needs argument(s) output" in error_of("w: {tasks: [jsonl]}")
    # several actions in one task: args one per action, each checked at its own key
    assert "workflow.w.tasks.0.args.1: unknown argument(s) outptu" in error_of("w: {tasks: [{action: [load, jsonl], args: [null, {outptu: x}]}]}")


def test_python_paths_must_import(error_of):
    message = error_of("w: {tasks: [load, load, {action: mypackage.steps.clean}]}")
    assert ": workflow.w.tasks.2.action: action 'mypackage.steps.clean': cannot import" in message


def test_other_mistakes_name_the_workflow(error_of):
    assert "workflow.w.task: Extra inputs are not permitted" in error_of("w: {task: [load]}")  # an unknown key
    assert "workflow.w.tasks: List should have at least 1 item" in error_of("w: {tasks: []}")  # a non-empty list
    assert "unknown task type 'fancy'" in error_of("w: {tasks: [{task: fancy, action: load}]}")
    assert "is this workflow itself" in error_of("w: {tasks: [w]}")
    assert "loop: a -> b -> a" in error_of("a: {tasks: [b]}\nb: {tasks: [a]}")
    assert "upsert" in error_of("w: {tasks: [index]}")  # txtai's own index action does not apply
    assert "workflow.w.tasks.0.action: must be an action name or a list of them" in error_of("w: {tasks: [{action: 5}]}")


def test_every_config_error_has_one_shape(error_of, tmp_path):
    """A workflow mistake reads like any other config mistake, and all of them are reported at once."""
    file = tmp_path / "config.yml"
    message = error_of("ask: {tasks: [questions, {action: ask, args: {foo: 1}}]}", environ={"RAG_SEARCH__LIMIT": "many"})
    assert message.splitlines() == [
        f"{file}: search.limit: Input should be a valid integer, unable to parse string as an integer (got 'many')",
        f"{file}: workflow.ask.tasks.1.args: unknown argument(s) foo for action 'ask'; accepted: top_k, where",
    ]
    # an environment override that breaks a workflow names the same key
    section = "w: {tasks: [ingest]}"
    assert error_of(section, environ={"RAG_WORKFLOW__W__BATCH": "0"}) == f"{file}: workflow.w.batch: Input should be greater than or equal to 1 (got 0)"


def test_invalid_section_stops_every_command_before_any_work(tmp_path):
    with_section(tmp_path, "digest:\n  tasks: [load, summarise]\n")
    with pytest.raises(ConfigError, match=r"workflow\.digest\.tasks\.1\.action: unknown action 'summarise'"):
        load_config(tmp_path / "config.yml")
    for command in (["workflow", "list"], ["ingest"]):
        result = CliRunner().invoke(app, ["--config", str(tmp_path / "config.yml"), *command])
        assert result.exit_code == 2
        assert "workflow.digest.tasks.1.action: unknown action 'summarise'" in result.output
    assert not (tmp_path / "indexes").exists()


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
    workflows = load_config(tmp_path / "config.yml", environ={}).workflow.workflows
    assert workflows["resync"].schedule.enabled is False
    assert workflows["every"].schedule.every == 90 and workflows["every"].schedule.enabled is False
    # six fields: seconds last (croniter)
    start = 1_700_000_001.0
    assert workflows["fast"].schedule.next(start) - start <= 2
    assert Schedule(cron="*/30 * * * *").next(start) - start <= 30 * 60

    # the documented switch: an environment override turns the schedule on
    enabled = load_config(tmp_path / "config.yml", environ={"RAG_WORKFLOW__RESYNC__SCHEDULE__ENABLED": "true"})
    assert enabled.workflow.workflows["resync"].schedule.enabled is True


def test_scheduler_does_not_start_without_enabled_schedules(tmp_path):
    from rag.service import LocalRAG

    write_config(tmp_path, "workflow:\n  resync:\n    schedule: {cron: '*/30 * * * *', enabled: false}\n    tasks: [ingest]\n")
    scheduler = Scheduler(LocalRAG(load_config(tmp_path / "config.yml")))
    assert scheduler.start() is False
    assert scheduler.thread is None
