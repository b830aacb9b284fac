"""Screenshots of the web page's main states, for the README: docs/web-*.png at 1280x900.

    HF_HUB_OFFLINE=1 .venv/bin/python docs/screenshots.py

Serves config.yml over the sample documents in data/ (index, uploads and outputs in a temporary
folder; the embedded LLM) and drives Debian's headless chromium as tests/test_web.py does.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402

from tests.helpers import ApiServer, make_workspace  # noqa: E402
from tests.test_web import ask, choose_mode, chrome, wait  # noqa: E402

OUT = ROOT / "docs"
WIDTH, HEIGHT = 1280, 900
QUESTION = "What port does the HTTP API listen on by default?"


def sample_server(folder: Path) -> ApiServer:
    """config.yml over data/, everything it writes inside `folder`."""
    os.environ.update(
        RAG_DATA_DIR=str(ROOT / "data"),
        RAG_INDEX_DIR=str(folder / "indexes"),
        RAG_UPLOADS_DIR=str(folder / "uploads"),
        RAG_OUTPUT_DIR=str(folder / "outputs"),
        RAG_LLM_PROVIDER="embedded",
        RAG_LLM__MAX_TOKENS="60",  # SmolLM2-135M tends to repeat itself in long answers
    )
    from rag.config import load_config
    from rag.ingest import Ingestor

    Ingestor(load_config(ROOT / "config.yml")).run()
    return ApiServer(ROOT / "config.yml").start()


def browser(folder: Path, dark: bool = False):
    driver = chrome(folder / ("profile-dark" if dark else "profile"))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
    if dark:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    return driver


def shoot(driver, name: str):
    time.sleep(0.3)  # let focus rings and transitions settle
    driver.save_screenshot(str(OUT / name))
    print("wrote", OUT / name)


def answer_states(driver, url: str, folder: Path, dark: bool = False):
    driver.get(url)
    wait(driver, EC.presence_of_element_located((By.CSS_SELECTOR, "#documents-body tr[data-document]")))
    ask(driver, QUESTION)
    wait(driver, lambda d: d.find_element(By.ID, "answer").get_attribute("aria-busy") == "false" and d.find_elements(By.CSS_SELECTOR, ".chip"))
    if dark:
        driver.execute_script("document.activeElement.blur()")
        return shoot(driver, "web-dark.png")
    upload = folder / "meeting-notes.md"
    upload.write_text("# Meeting notes\n\nThe team agreed to back up the indexes every night.\n", encoding="utf-8")
    unsupported = folder / "budget.xlsx"
    unsupported.write_bytes(b"PK\x03\x04 not a supported type")
    driver.find_element(By.ID, "files").send_keys(f"{upload}\n{unsupported}")
    wait(driver, EC.visibility_of_element_located((By.CSS_SELECTOR, 'li.upload.done[data-file="meeting-notes.md"]')))
    wait(driver, EC.visibility_of_element_located((By.CSS_SELECTOR, 'tr[data-document="uploads:meeting-notes.md"]')))
    driver.execute_script("document.activeElement.blur()")
    shoot(driver, "web-ask.png")
    driver.find_element(By.CSS_SELECTOR, "#citations .chip, #context .chip").click()
    wait(driver, EC.visibility_of_element_located((By.ID, "passage")))
    wait(driver, lambda d: "Loading" not in d.find_element(By.ID, "passage-note").text)
    shoot(driver, "web-passage.png")
    driver.find_element(By.ID, "passage").send_keys(Keys.ESCAPE)
    choose_mode(driver, "search")
    ask(driver, "back up the index")
    wait(driver, EC.visibility_of_element_located((By.CSS_SELECTOR, "#hits li.hit")))
    driver.execute_script("document.activeElement.blur()")
    shoot(driver, "web-search.png")


def key_prompt(driver, url: str):
    driver.get(url)
    wait(driver, EC.visibility_of_element_located((By.ID, "key-dialog")))
    driver.find_element(By.ID, "key-input").send_keys("not-the-key", Keys.ENTER)
    wait(driver, EC.visibility_of_element_located((By.ID, "key-error")))
    shoot(driver, "web-key.png")


def main():
    with tempfile.TemporaryDirectory(prefix="localrag-shots-") as name:
        folder = Path(name)
        server = sample_server(folder)
        (folder / "keyed").mkdir()
        keyed = ApiServer(make_workspace(folder / "keyed", keys=True)).start()
        try:
            for dark in (False, True):
                driver = browser(folder, dark)
                try:
                    answer_states(driver, server.url, folder, dark)
                finally:
                    driver.quit()
            driver = browser(folder)
            try:
                key_prompt(driver, keyed.url)
            finally:
                driver.quit()
        finally:
            keyed.stop()
            server.stop()


if __name__ == "__main__":
    main()
