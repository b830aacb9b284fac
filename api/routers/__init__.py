"""Thin FastAPI routers over rag.service.LocalRAG (request.app.state.rag)."""
