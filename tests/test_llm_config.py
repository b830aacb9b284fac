"""The llm: and answer: sections of config.yml: defaults, environment, and errors that name the key."""

import textwrap

import pytest

from rag.config import AnswerConfig, ConfigError, load_config
from rag.llm import LLMConfig


def write(tmp_path, text: str):
    path = tmp_path / "config.yml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_defaults_follow_the_environment(monkeypatch):
    monkeypatch.delenv("OLLAMA_BASE_URL", raising=False)
    monkeypatch.delenv("OLLAMA_MODEL", raising=False)
    config = LLMConfig()
    assert config.provider == "auto"
    assert config.ollama.base_url == "http://localhost:11434"
    assert config.ollama.auto_pull is False
    assert config.max_tokens == 256
    assert config.embedded.n_ctx == 2048

    monkeypatch.setenv("OLLAMA_BASE_URL", "ollama:11434/")
    monkeypatch.setenv("OLLAMA_MODEL", "qwen3:0.6b")
    config = LLMConfig()
    assert config.ollama.base_url == "http://ollama:11434"
    assert config.ollama.model == "qwen3:0.6b"


def test_sections_load_from_config_yml(tmp_path):
    path = write(
        tmp_path,
        """\
        llm:
          provider: ollama
          max_tokens: 128
          ollama:
            base_url: http://gpu-box:11434
            model: llama3.2:3b
            keep_alive: 10m
            options: {num_ctx: 8192, temperature: 0.2}
            timeout: 300
            auto_pull: true
        answer:
          top_k: 8
          min_score: 0.35
          template: "Context:\\n{context}\\nQ: {question}"
        """,
    )
    config = load_config(path)
    assert config.llm.provider == "ollama"
    assert config.llm.ollama.options["num_ctx"] == 8192
    assert config.llm.ollama.keep_alive == "10m"
    assert config.llm.ollama.timeout == 300
    assert config.answer.top_k == 8
    assert config.answer.template.startswith("Context:")


@pytest.mark.parametrize(
    "section, key",
    [
        ("llm:\n  ollama:\n    timout: 5\n", "llm.ollama.timout"),
        ("llm:\n  provider: gpt\n", "llm.provider"),
        ("llm:\n  embeded: {}\n", "llm.embeded"),
        ("answer:\n  template: 'no fields here'\n", "answer.template"),
        ("answer:\n  passage: '[{n}] {txt}'\n", "answer.passage"),
        ("answer:\n  top_k: 0\n", "answer.top_k"),
    ],
)
def test_invalid_keys_fail_with_the_key_name(tmp_path, section, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(write(tmp_path, section))


def test_api_key_from_environment_is_never_printed(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    config = LLMConfig(provider="openai")
    assert config.openai.api_key.get_secret_value() == "sk-very-secret"
    assert "sk-very-secret" not in repr(config)
    assert "sk-very-secret" not in config.model_dump_json()


def test_answer_template_must_carry_question_and_context():
    with pytest.raises(ValueError, match=r"\{context\}"):
        AnswerConfig(template="Question: {question}")
    with pytest.raises(ValueError, match="double other braces"):
        AnswerConfig(template="{question} {context} {oops}")
    assert AnswerConfig(template="{{json}} {question} {context}")
