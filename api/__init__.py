"""The localrag HTTP API: thin FastAPI routers over rag.service.LocalRAG.

from api.app import create_app      # uvicorn api.app:create_app --factory (reads $RAG_CONFIG)
from api.server import serve        # what `rag serve` runs
"""
