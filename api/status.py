"""The LLM backend's status, checked in a background thread so /ready never waits on a slow backend."""

import logging
import threading

from rag.clock import now

logger = logging.getLogger("api")


class LLMStatus:
    """Cached `llm.status()`: refreshed every `ttl` seconds, and at once after a request saw the backend fail."""

    def __init__(self, ttl: float = 30.0):
        self.ttl = ttl
        self.value: dict = {"available": None, "note": "not checked yet"}
        self.rag = None
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread = None

    def start(self, rag):
        self.rag = rag
        self.thread = threading.Thread(target=self.loop, name="llm-status", daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.wake.set()

    def loop(self):
        while not self.stopping.is_set():
            self.check()
            self.wake.wait(self.ttl)
            self.wake.clear()

    def check(self) -> dict:
        try:
            status = self.rag.llm.status()
        except Exception as error:  # creating the backend failed (e.g. no model at all)
            status = {"available": False, "error": str(error), "error_type": type(error).__name__}
        self.value = {**status, "checked_at": now()}
        return self.value

    def failed(self, error: Exception):
        """A request found the backend failing: report it now, re-check soon."""
        self.value = {**self.value, "available": False, "error": str(error), "error_type": type(error).__name__, "checked_at": now()}

    def succeeded(self):
        if self.value.get("available") is False:
            self.wake.set()
