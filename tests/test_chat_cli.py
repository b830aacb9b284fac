"""`rag chat` in a real pseudo-terminal: streamed answers with sources, /sources, a follow-up that
needs the conversation, /new, /quit, and resuming a stored conversation."""

import os
import re
import sys

import pexpect
import pytest

from tests.conftest import ROOT
from tests.helpers import make_workspace

pytestmark = pytest.mark.slow  # whole processes: run by `make test`, left out by `make test-fast`

PROMPT = "you> "


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chat-cli")
    config = make_workspace(folder, keys=False, ingest=False)
    (folder / "docs" / "koala.md").write_text("# Koalas\n\nKoalas eat eucalyptus leaves and sleep most of the day.\n", encoding="utf-8")
    return config


def spawn(config, *args) -> pexpect.spawn:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}  # plain text to match; the layout is the same
    return pexpect.spawn(
        sys.executable, ["-m", "rag.cli", "--config", str(config), *args], cwd=str(ROOT), env=env, encoding="utf-8", timeout=120, dimensions=(40, 200)
    )


def test_chat_answers_follow_ups_shows_sources_and_resumes(config):
    assert pexpect.run(f"{sys.executable} -m rag.cli --config {config} ingest", cwd=str(ROOT), timeout=300, withexitstatus=True)[1] == 0
    child = spawn(config, "chat")
    child.expect_exact(PROMPT)
    child.sendline("What is the tallest living terrestrial animal?")
    child.expect(r"\[1\] notes\.txt")
    child.expect_exact(PROMPT)
    child.sendline("/sources 1")
    child.expect("The giraffe is the tallest living terrestrial animal. Giraffes eat acacia leaves.")
    child.expect_exact(PROMPT)
    child.sendline("What does it eat?")  # alone, this finds nothing above min_score (tests/test_conversations.py)
    child.expect(r"notes\.txt")
    child.expect(r"searched: What is the tallest living terrestrial animal\? What does it eat\?")
    child.expect_exact(PROMPT)
    child.sendline("/id")
    child.expect(r"([0-9a-f]{32})")
    conversation = child.match.group(1)
    child.expect_exact(PROMPT)
    child.sendline("/new")
    child.expect_exact("new conversation")
    child.expect_exact(PROMPT)
    child.sendline("What does it eat?")
    child.expect_exact("I could not find this in the documents.")  # a new conversation has no history
    child.expect_exact(PROMPT)
    child.sendline("/quit")
    child.expect(pexpect.EOF)

    resumed = spawn(config, "chat", "--conversation", conversation)
    resumed.expect_exact("you> What is the tallest living terrestrial animal?")
    resumed.expect_exact("you> What does it eat?")
    resumed.expect_exact(PROMPT)
    resumed.sendeof()
    resumed.expect(pexpect.EOF)

    missing = spawn(config, "chat", "--conversation", "nope")
    missing.expect(re.escape("no conversation 'nope'"))
    missing.expect(pexpect.EOF)
    missing.close()
    assert missing.exitstatus == 2
