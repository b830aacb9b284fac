"""localrag: private, local-first semantic search and grounded question answering."""

__version__ = "0.1.0"
