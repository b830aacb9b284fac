"""`rag migrate`: creates the index's tables (and localrag's own) when missing, then exits.

Run before the API replicas start (docker compose does); idempotent, so it is safe on every start.
With the local store there is nothing to create (folders are made by the first write).
"""

import typer

from .app import OK, UNWRITABLE, app, config, console, fail


@app.command()
def migrate():
    """Create the database schema of the index (index.store: postgres) if missing; exit 0 when it is ready."""
    from sqlalchemy.exc import DBAPIError

    from ..store import open_store

    store = open_store(config())
    try:
        store.migrate()
    except DBAPIError as error:
        fail(f"cannot create the tables of {store.path}: {str(getattr(error, 'orig', error)).strip()}", UNWRITABLE)
    console.print(f"schema ready: {store.path}", highlight=False)
    raise typer.Exit(OK)
