"""Stored conversations of the calling API key: list, read, delete. A conversation begins with
`POST /ask {"remember": true}` and continues with `conversation_id`; one key never sees another's."""

from dataclasses import asdict

from fastapi import APIRouter, Query, Request, Response

from ..answering import owner
from ..auth import READ
from ..schemas import ERRORS, ErrorResponse

router = APIRouter(tags=["conversations"], dependencies=[READ])
NOT_FOUND = {404: {"model": ErrorResponse, "description": "No such conversation for this API key"}}


@router.get("/conversations", summary="The key's conversations, most recent first", responses=ERRORS)
def conversations(request: Request, limit: int = Query(50, ge=1, le=200)) -> dict:
    listed = request.app.state.rag.conversations.list(owner(request), limit)
    return {"conversations": [asdict(conversation) | {"turns": None} for conversation in listed]}


@router.get("/conversations/{id}", summary="One conversation with its turns", responses={**ERRORS, **NOT_FOUND})
def conversation(id: str, request: Request) -> dict:
    return asdict(request.app.state.rag.conversations.get(id, owner(request)))


@router.delete("/conversations/{id}", status_code=204, summary="Delete a conversation", responses={**ERRORS, **NOT_FOUND})
def delete(id: str, request: Request):
    request.app.state.rag.conversations.delete(id, owner(request))
    return Response(status_code=204)
