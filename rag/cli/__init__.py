"""The `rag` command line: one module per command group, each thin over rag.service.LocalRAG.

    rag ingest | search | status      rag.cli.index
    rag ask                           rag.cli.answers
    rag chat                          rag.cli.chat
    rag serve                         rag.cli.serve
    rag eval                          rag.cli.evaluate
    rag workflow list | run           rag.cli.workflows
    rag mcp                           rag.cli.mcp
    rag watch                         rag.cli.watch
    rag migrate                       rag.cli.migrate
"""

import sys

from . import answers, chat, evaluate, index, mcp, migrate, serve, watch, workflows  # noqa: F401  (each registers its commands)
from .app import app


def main():
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
