"""`rag mcp`: localrag as an MCP server over stdio, for desktop agents (Claude Desktop, IDEs, ...)."""

from .app import app, service


@app.command()
def mcp():
    """Serve the MCP tools (search, ask, list_documents, get_passage) and document resources over stdio."""
    from api.mcp import build_server

    rag = service()
    try:
        build_server(rag).run("stdio")  # stdout carries the protocol only: stray output goes to stderr
    finally:
        rag.close()
