"""The web page (api/web) in a real browser: Debian's headless chromium driven by Selenium through
/usr/bin/chromedriver (nothing downloaded), over the real API (real model, FAISS, embedded LLM)."""

import os
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.helpers import ADMIN_KEY, READ_KEY, ApiServer, make_workspace

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)", allow_module_level=True)

os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download a browser or driver

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WAIT = 120  # seconds: the embedded LLM answers in a few seconds on a busy machine
CHROME_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)


def chrome(profile: Path) -> webdriver.Chrome:
    """Headless chromium with a fresh profile folder, driven through Debian's chromedriver."""
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in CHROME_ARGUMENTS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def wait(driver, condition, timeout: float = WAIT):
    return WebDriverWait(driver, timeout).until(condition)


def text_of(element) -> str:
    """An element's text as the DOM holds it (Selenium's .text collapses whitespace and hides overflow)."""
    return element.get_attribute("textContent")


def ask(driver, question: str):
    field = driver.find_element(By.ID, "question")
    field.clear()
    field.send_keys(question, Keys.ENTER)


def choose_mode(driver, mode: str):
    driver.find_element(By.CSS_SELECTOR, f'input[name="mode"][value="{mode}"]').click()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = ApiServer(make_workspace(tmp_path_factory.mktemp("web"), keys=False, provider="embedded")).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    running = ApiServer(make_workspace(tmp_path_factory.mktemp("web-keys"), keys=True, provider="embedded")).start()
    yield running
    running.stop()


@pytest.fixture
def browser():
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        driver = chrome(Path(profile))
        try:
            yield driver
        finally:
            driver.quit()


def test_page_is_served_without_a_key_under_a_strict_policy(keyed_server):
    with keyed_server.client(key=None) as client:
        page = client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert client.get("/web/app.js").status_code == 200
        assert client.get("/web/style.css").status_code == 200
        assert client.get("/web/index.html").status_code == 404  # only the page's own files, by name
        assert client.get("/documents").status_code == 401  # the data still needs a key


def test_ask_streams_an_answer_whose_citation_opens_the_passage_or_its_snippet(server, browser):
    browser.get(server.url)
    # note when the answer changes: a streamed answer grows piece by piece while the LLM writes it
    browser.execute_script(
        "window.answerUpdates = [];"
        "const answer = document.getElementById('answer');"
        "new MutationObserver(() => window.answerUpdates.push([performance.now(), answer.textContent.length]))"
        ".observe(answer, {childList: true, characterData: true, subtree: true});"
    )
    ask(browser, "What port does the server listen on?")
    chip = wait(browser, EC.element_to_be_clickable((By.CSS_SELECTOR, "#citations button.chip")))
    wait(browser, lambda d: d.find_element(By.ID, "answer").get_attribute("aria-busy") == "false")
    answer = text_of(browser.find_element(By.ID, "answer"))
    assert answer.strip(), "no answer text"
    updates = browser.execute_script("return window.answerUpdates")
    final = len(answer)
    partial = [when for when, length in updates if 0 < length < final]
    assert partial and updates[-1][0] - partial[0] > 50, f"no part of the answer was shown while it was written: {updates}"
    assert "SmolLM2" in browser.find_element(By.ID, "answer-meta").text
    assert not browser.find_element(By.ID, "ask-error").is_displayed()

    passage_id = chip.get_attribute("data-passage")
    label = chip.find_element(By.CSS_SELECTOR, ".chip-label").text
    chip.click()
    dialog = wait(browser, EC.visibility_of_element_located((By.ID, "passage")))
    title = browser.find_element(By.ID, "passage-title").text
    assert title and label.startswith(title), (title, label)  # the passage's source file
    with server.client() as client:
        passage = client.get(f"/passages/{quote(passage_id, safe='')}")
    assert passage.status_code == 200, f"GET /passages/{{id}} answered {passage.status_code}: {passage.text[:200]}"
    passage = passage.json()
    expected = passage["text"]
    wait(browser, lambda d: text_of(d.find_element(By.ID, "passage-text")) == expected, timeout=30)
    assert "could not be loaded" not in browser.find_element(By.ID, "passage-note").text

    dialog.send_keys(Keys.ESCAPE)
    wait(browser, EC.invisibility_of_element_located((By.ID, "passage")), timeout=10)
    assert browser.switch_to.active_element == chip  # focus back on the chip that opened it

    # the passage is gone from the index since the answer: the chip still shows what it cited
    with server.client() as client:
        client.delete(f"/documents/{passage['document']}").raise_for_status()
    chip.send_keys(Keys.ENTER)
    wait(browser, lambda d: "could not be loaded" in d.find_element(By.ID, "passage-note").text, timeout=30)
    assert text_of(browser.find_element(By.ID, "passage-text")) == chip.get_attribute("title")  # the citation's snippet
    assert browser.find_element(By.ID, "passage-title").text == title


def test_a_follow_up_continues_the_conversation_until_a_new_one(server, browser):
    browser.get(server.url)
    ask(browser, "What is the tallest living terrestrial animal?")
    wait(browser, EC.element_to_be_clickable((By.CSS_SELECTOR, "#citations button.chip")))
    wait(browser, lambda d: d.find_element(By.ID, "answer").get_attribute("aria-busy") == "false")
    ask(browser, "What does it eat?")
    searched = wait(browser, EC.visibility_of_element_located((By.ID, "standalone")))
    assert "tallest living terrestrial animal" in searched.text and searched.text.endswith("What does it eat?")
    wait(browser, lambda d: d.find_element(By.ID, "answer").get_attribute("aria-busy") == "false")
    browser.find_element(By.ID, "new-conversation").click()
    assert not browser.find_element(By.ID, "standalone").is_displayed()
    ask(browser, "What does it eat?")  # a new conversation: the question is searched alone
    wait(browser, lambda d: d.find_element(By.ID, "answer").get_attribute("aria-busy") == "false")
    assert not browser.find_element(By.ID, "standalone").is_displayed()


def test_search_only_lists_passages(server, browser):
    browser.get(server.url)
    choose_mode(browser, "search")
    assert browser.find_element(By.ID, "ask-submit").text == "Search"
    ask(browser, "giraffe")
    first = wait(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, "#hits li.hit")))
    assert "notes.txt" in first.find_element(By.CSS_SELECTOR, "button.link").text
    assert "giraffe" in text_of(first.find_element(By.CSS_SELECTOR, ".hit-text")).lower()
    assert "passage" in browser.find_element(By.ID, "search-meta").text
    assert not browser.find_element(By.ID, "answer-block").is_displayed()  # no answer was asked for

    first.find_element(By.CSS_SELECTOR, "button.link").send_keys(Keys.ENTER)  # buttons work from the keyboard
    wait(browser, EC.visibility_of_element_located((By.ID, "passage")))
    assert "tallest living terrestrial animal" in text_of(browser.find_element(By.ID, "passage-text"))


def test_upload_lists_the_file_with_its_chunks_then_delete_removes_it(server, browser, tmp_path):
    good = tmp_path / "penguins.md"
    good.write_text("# Penguins\n\nEmperor penguins huddle together through the Antarctic winter.\n", encoding="utf-8")
    bad = tmp_path / "table.xyz"
    bad.write_text("not a document type localrag reads", encoding="utf-8")
    browser.get(server.url)
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, '#documents-body tr[data-document="docs:notes.txt"]')))

    browser.find_element(By.ID, "files").send_keys(f"{good}\n{bad}")
    failed = wait(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, 'li.upload.failed[data-file="table.xyz"]')))
    assert "unsupported file type .xyz" in failed.text  # the API's 415 message, for that file only
    done = wait(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, 'li.upload.done[data-file="penguins.md"]')))
    assert "Indexed: 1 passage" in done.text
    row = wait(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, '#documents-body tr[data-document="uploads:penguins.md"]')))
    assert row.find_element(By.CSS_SELECTOR, "td.chunks").text == "1"
    assert row.find_element(By.CSS_SELECTOR, "th .name").text == "penguins.md"
    assert row.find_element(By.CSS_SELECTOR, "th .collection").text == "uploads · md"

    row.find_element(By.CSS_SELECTOR, "button").click()
    confirm = wait(browser, EC.visibility_of_element_located((By.ID, "confirm-dialog")))
    assert "penguins.md" in confirm.text
    browser.find_element(By.ID, "confirm-delete").click()
    wait(browser, EC.invisibility_of_element_located((By.CSS_SELECTOR, '#documents-body tr[data-document="uploads:penguins.md"]')))
    assert "Deleted penguins.md" in browser.find_element(By.ID, "documents-status").text
    assert browser.find_elements(By.CSS_SELECTOR, '#documents-body tr[data-document="docs:notes.txt"]')  # the rest stays
    with server.client() as client:
        assert client.get("/documents/uploads:penguins.md").status_code == 404


def test_keys_are_asked_for_kept_in_the_session_and_scoped(keyed_server, browser, tmp_path):
    browser.get(keyed_server.url)
    dialog = wait(browser, EC.visibility_of_element_located((By.ID, "key-dialog")))
    field = browser.find_element(By.ID, "key-input")
    assert field.get_attribute("type") == "password"
    assert browser.find_element(By.CSS_SELECTOR, 'label[for="key-input"]').text == "API key"

    field.send_keys("not-a-key", Keys.ENTER)
    error = wait(browser, EC.visibility_of_element_located((By.ID, "key-error")))
    assert "invalid API key" in error.text
    assert dialog.is_displayed()

    browser.find_element(By.ID, "key-input").send_keys(READ_KEY, Keys.ENTER)
    wait(browser, EC.invisibility_of_element_located((By.ID, "key-dialog")), timeout=10)
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, '#documents-body tr[data-document="docs:install.md"]')))
    assert browser.execute_script("return sessionStorage.getItem('localrag.apiKey')") == READ_KEY
    assert browser.execute_script("return localStorage.length") == 0

    ask(browser, "What port does the server listen on?")
    wait(browser, lambda d: "SmolLM2" in d.find_element(By.ID, "answer-meta").text)  # the answer is done
    assert text_of(browser.find_element(By.ID, "answer")).strip()
    assert not browser.find_element(By.ID, "ask-error").is_displayed()

    upload = tmp_path / "report.md"
    upload.write_text("# Report\n\nQuarterly figures.\n", encoding="utf-8")
    browser.find_element(By.ID, "files").send_keys(str(upload))
    failed = wait(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, 'li.upload.failed[data-file="report.md"]')))
    assert "This key cannot upload (read scope)." in failed.text

    browser.find_element(By.CSS_SELECTOR, '#documents-body tr[data-document="docs:install.md"] button').click()
    wait(browser, EC.visibility_of_element_located((By.ID, "confirm-dialog")))
    browser.find_element(By.ID, "confirm-delete").click()
    error = wait(browser, EC.visibility_of_element_located((By.ID, "documents-error")))
    assert "This key cannot delete (read scope)." in error.text
    with keyed_server.client(key=ADMIN_KEY) as client:
        assert client.get("/documents/uploads:report.md").status_code == 404  # nothing was uploaded
        assert client.get("/documents/docs:install.md").status_code == 200  # nor deleted
