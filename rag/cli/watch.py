"""`rag watch`: keeps the index in sync with the source folders until Ctrl-C or SIGTERM."""

import logging
import signal
import threading

import typer

from .app import OK, app, console, service

CRASHED = 1  # the watcher stopped on an unexpected error (logged)


@app.command()
def watch(
    debounce: float = typer.Option(None, "--debounce", "-d", min=0.05, help="Seconds of quiet before a sync (default ingest.watch_debounce)."),
    polling: bool = typer.Option(None, "--polling/--events", help="Poll instead of file system events (default ingest.watch_polling)."),
):
    """Watch the sources: sync the index (incrementally) whenever files are added, changed, renamed or deleted."""
    from ..watch import Watcher

    handler = logging.StreamHandler(console.file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    log = logging.getLogger("rag.watch")
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    stopped = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    rag = service()
    watcher = Watcher(rag, debounce=debounce, polling=polling).start()
    try:
        while not stopped.wait(0.5) and watcher.thread.is_alive():
            pass
    except KeyboardInterrupt:
        stopped.set()
    finally:
        log.info("stopping (a sync in progress is finished first)")
        watcher.stop()
        rag.close()
        signal.signal(signal.SIGTERM, previous)
    raise typer.Exit(OK if stopped.is_set() else CRASHED)
