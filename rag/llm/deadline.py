"""Deadlines for LLM calls: a backend's timeout bounds a whole answer, not each network read.

    deadline = Deadline(10, "llm.ollama.timeout", "Ollama at http://localhost:11434")
    for piece in within(deadline, lambda: client_stream(...)): ...   # LLMTimeout 10 s after the call

The blocking work (an HTTP stream, llama.cpp's generation) runs in a daemon thread and the caller
waits for each piece only until the deadline. So a backend that trickles tokens or never answers
holds no caller past its timeout, concurrent callers time out each on its own clock, a stuck read
cannot keep the process from exiting, and `abort_calls` (server shutdown) ends every wait at once.
"""

import copy
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from .errors import LLMTimeout, LLMUnavailable

END = object()

# The mailbox of every wait in progress in the process, for abort_calls
WAITS: set[queue.SimpleQueue] = set()
WAITS_LOCK = threading.Lock()


class Failure:
    """An exception raised in a worker thread, to raise in the waiting caller's."""

    def __init__(self, error: BaseException):
        self.error = error


class Deadline:
    """The moment a call must be done by: `seconds` from now (None: no limit). `setting` is the
    config key of the timeout and `what` the backend, both named in the error."""

    def __init__(self, seconds: float | None, setting: str = "", what: str = "the LLM"):
        self.seconds, self.setting, self.what = seconds, setting, what
        self.at = None if seconds is None else time.monotonic() + seconds

    def left(self) -> float | None:
        """Seconds left, 0 once passed; None without a limit."""
        return None if self.at is None else max(0.0, self.at - time.monotonic())

    def error(self) -> LLMTimeout:
        return LLMTimeout(
            f"{self.what} did not finish within {self.seconds:g} s ({self.setting}). "
            "Local models can be slow: raise the timeout or use a smaller model."
        )


@contextmanager
def waiting(mailbox: queue.SimpleQueue):
    """Registers a wait so that abort_calls can end it."""
    with WAITS_LOCK:
        WAITS.add(mailbox)
    try:
        yield mailbox
    finally:
        with WAITS_LOCK:
            WAITS.discard(mailbox)


def take(mailbox: queue.SimpleQueue, deadline: Deadline):
    """The next item put in mailbox, waited for until the deadline: raises what the worker raised,
    or deadline.error() when time is up. Items already there are returned even past the deadline."""
    try:
        item = mailbox.get(timeout=deadline.left())
    except queue.Empty:
        raise deadline.error() from None
    if isinstance(item, Failure):
        raise item.error
    return item


def abort_calls(reason: str) -> int:
    """Ends every wait for an LLM in this process with LLMUnavailable (e.g. at server shutdown, so
    no request stays stuck on a hung backend); returns how many were waiting. Their workers stop
    at their next piece."""
    with WAITS_LOCK:
        mailboxes = list(WAITS)
    for mailbox in mailboxes:
        mailbox.put(Failure(LLMUnavailable(f"the LLM call was stopped: {reason}")))
    return len(mailboxes)


def within(deadline: Deadline, produce: Callable[[], Iterable], name: str = "llm-call") -> Iterator:
    """Iterates produce() in a daemon thread and yields its items as they come, each waited for
    only until the deadline (then LLMTimeout). Closing this iterator, or the deadline passing,
    stops the worker at its next item and closes produce()'s iterator (which ends the request)."""
    stopped = threading.Event()

    def work(mailbox):
        try:
            items = produce()
            try:
                for item in items:
                    mailbox.put(item)
                    if stopped.is_set():
                        break
            finally:
                if hasattr(items, "close"):
                    items.close()
            mailbox.put(END)
        except BaseException as error:  # raised in the caller's thread
            mailbox.put(Failure(error))

    with waiting(queue.SimpleQueue()) as mailbox:
        threading.Thread(target=work, args=(mailbox,), name=name, daemon=True).start()
        try:
            while (item := take(mailbox, deadline)) is not END:
                yield item
        finally:
            stopped.set()


class Shared:
    """fn() run once for all the callers that want it meanwhile: the first caller starts it in a
    daemon thread and every caller waits for the outcome until its own deadline, so a hung backend
    makes them all fail together instead of one after another. A result is kept; a failure goes to
    the callers then waiting and the next call runs fn again."""

    def __init__(self, fn: Callable, name: str = "llm-shared"):
        self.fn, self.name = fn, name
        self.lock = threading.Lock()
        self.waiters: list[queue.SimpleQueue] | None = None  # None: fn is not running
        self.done, self.value = False, None

    def get(self, deadline: Deadline | None = None):
        with waiting(queue.SimpleQueue()) as mailbox:
            with self.lock:
                if self.done:
                    return self.value
                first = self.waiters is None
                self.waiters = [*(self.waiters or []), mailbox]
            if first:
                threading.Thread(target=self.run, name=self.name, daemon=True).start()
            return take(mailbox, deadline or Deadline(None))

    def run(self):
        try:
            outcome = self.fn()
        except BaseException as error:  # handed to every waiter
            outcome = Failure(error)
        with self.lock:
            if not isinstance(outcome, Failure):
                self.done, self.value = True, outcome
            waiters, self.waiters = self.waiters, None
        for mailbox in waiters:
            mailbox.put(Failure(duplicate(outcome.error)) if isinstance(outcome, Failure) else outcome)


def duplicate(error: BaseException) -> BaseException:
    """A copy of error for each thread that raises it (a raise adds to the exception's traceback)."""
    try:
        return copy.copy(error)
    except Exception:  # an exception class that cannot be rebuilt from its args
        return error
