"""Documents: upload, list, show, delete; ingestion runs as background jobs."""

import os
from pathlib import Path

from fastapi import APIRouter, File, Query, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from rag.loaders import SUPPORTED_TYPES
from rag.manifest import Document
from rag.service import safe_name

from ..auth import READ, WRITE
from ..errors import ApiError
from ..limits import checked
from ..schemas import ERRORS, MAX_NAME, Accepted, Deleted, DocumentList, ErrorResponse, IngestRequest, Job, JobList

router = APIRouter(tags=["documents"])

MAX_FILES = 20  # files per upload request
WAIT_SECONDS = 300  # ?wait=true answers 202 with the running job after this long
WAIT = Query(False, description="Wait for the ingest to finish and answer 200 with the finished job instead of 202.")


def start_ingest(request: Request, paths: list[Path] | None, rebuild: bool, uploaded: bool = False) -> dict:
    """Queues an ingest job (one at a time per process; state in files, so any worker reports it)."""
    return request.app.state.rag.ingest_job(paths, rebuild=rebuild, uploaded=uploaded, observer=request.app.state.metrics.ingested)


async def finish(request: Request, response: Response, job: dict, wait: bool) -> dict:
    """With wait: the finished job (200); else, or if it runs past WAIT_SECONDS, the job as it is (202)."""
    if wait:
        try:
            finished = await run_in_threadpool(request.app.state.rag.jobs.wait, job["id"], WAIT_SECONDS)
            response.status_code = 200
            return finished
        except TimeoutError:
            job = request.app.state.rag.jobs.get(job["id"]) or job
    response.status_code = 202
    response.headers["Location"] = f"/jobs/{job['id']}"
    return job


@router.post(
    "/documents",
    response_model=Accepted,
    status_code=202,
    dependencies=[WRITE],
    summary="Upload documents and ingest them",
    responses={
        **ERRORS,
        200: {"model": Accepted, "description": "With `?wait=true`: ingested; the job's result lists added and failed files"},
        400: {"model": ErrorResponse, "description": f"Not a multipart form, or more than {MAX_FILES} files"},
        413: {"model": ErrorResponse, "description": "A file is larger than api.max_upload_size"},
        415: {"model": ErrorResponse, "description": "A file type that cannot be ingested"},
    },
)
async def upload(
    request: Request,
    response: Response,
    files: list[UploadFile] = File(
        min_length=1, max_length=MAX_FILES, description=f"One or more files ({', '.join(sorted(SUPPORTED_TYPES))}); at most {MAX_FILES}."
    ),
    wait: bool = WAIT,
):
    """Saves the files into the uploads folder (source `uploads`; names are sanitized: no folders, no
    traversal; a file of the same name is replaced) and ingests them in a background job: 202 with the
    job (poll `GET /jobs/{id}`). Nothing is saved when any file is rejected (413, 415, 422). A file that
    cannot be read (e.g. a corrupt PDF) is listed in the job's `result.failed` and not kept."""
    rag = request.app.state.rag
    limit = rag.config.api.max_upload_size
    names = []
    for upload in files:
        try:
            name = safe_name(upload.filename or "")
        except ValueError as error:
            raise ApiError(422, str(error), details={"filename": upload.filename}) from None
        suffix = Path(name).suffix.lower()
        if suffix not in SUPPORTED_TYPES:
            request.app.state.metrics.uploads.labels("unsupported_type").inc()
            raise ApiError(
                415,
                f"{upload.filename}: unsupported file type {suffix or '(none)'}",
                details={"filename": upload.filename, "supported": sorted(SUPPORTED_TYPES)},
            )
        if upload.size is not None and upload.size > limit:
            request.app.state.metrics.uploads.labels("too_large").inc()
            raise ApiError(
                413,
                f"{upload.filename}: {upload.size} bytes, larger than the upload limit of {limit} bytes",
                details={"filename": upload.filename, "limit": limit},
            )
        names.append(name)
    if len(set(names)) != len(names):
        raise ApiError(422, "two files have the same (sanitized) name", details={"names": names})

    saved = []
    try:
        for upload, name in zip(files, names):
            path = await run_in_threadpool(rag.save_upload, name, upload.file, limit)
            saved.append({"filename": upload.filename, "name": path.name, "document": f"uploads:{path.name}", "size": path.stat().st_size})
    except OverflowError as error:  # sizes are checked above; this guards a size the parser did not report
        raise ApiError(413, str(error)) from None
    request.app.state.metrics.uploads.labels("accepted").inc(len(saved))
    job = start_ingest(request, [rag.uploads / item["name"] for item in saved], rebuild=False, uploaded=True)
    return {"job": await finish(request, response, job, wait), "files": saved}


@router.get("/documents", response_model=DocumentList, dependencies=[READ], summary="List indexed documents", responses=ERRORS)
def documents(request: Request, collection: str | None = Query(None, max_length=MAX_NAME, description="Only this source, e.g. `uploads`.")):
    listed = request.app.state.rag.documents()
    if collection:
        listed = [document for document in listed if document.collection == collection]
    return {"count": len(listed), "documents": listed}


@router.get(
    "/documents/{id:path}",
    response_model=Document,
    dependencies=[READ],
    summary="One document",
    responses={**ERRORS, 404: {"model": ErrorResponse, "description": "No such document"}},
)
def document(id: str, request: Request):
    """`id` is `<source>:<path>`, e.g. `uploads:report.pdf` or `docs:guide/install.md` (slashes allowed)."""
    return request.app.state.rag.document(id)


@router.delete(
    "/documents/{id:path}",
    response_model=Deleted,
    dependencies=[WRITE],
    summary="Delete a document",
    responses={
        **ERRORS,
        404: {"model": ErrorResponse, "description": "No such document"},
        409: {"model": ErrorResponse, "description": "Another writer holds the index"},
    },
)
def delete(id: str, request: Request):
    """Removes the document's chunks at once (no re-embedding) and, for an upload, its file.
    A document of a configured source comes back on the next ingest unless its file is removed."""
    return request.app.state.rag.delete(id)


@router.post(
    "/ingest",
    response_model=Job,
    status_code=202,
    dependencies=[WRITE],
    summary="Sync the configured sources into the index",
    responses={**ERRORS, 200: {"model": Job, "description": "With `?wait=true`: the finished job"}},
)
async def ingest(request: Request, response: Response, body: IngestRequest = checked(IngestRequest, optional=True), wait: bool = WAIT):
    """Starts an incremental ingest (only new and changed files are embedded; removed ones are deleted)
    as a background job: 202 with the job; poll `GET /jobs/{id}`. If another process (e.g. `rag ingest`)
    is writing the index, the job fails with IndexLocked."""
    paths = [inside_sources(request, raw) for raw in body.paths] if body.paths else None
    return await finish(request, response, start_ingest(request, paths, body.rebuild), wait)


def inside_sources(request: Request, raw: str) -> Path:
    """A path given to /ingest, which must lie inside a configured source or the uploads folder."""
    config = request.app.state.rag.config
    path = Path(os.path.abspath(config.resolve(raw)))
    if not config.within_sources(path):
        raise ApiError(422, f"{raw}: not inside a configured source", details={"sources": [str(root) for root in config.document_roots()]})
    return path


@router.get("/jobs", response_model=JobList, dependencies=[READ], summary="Recent jobs, newest first", responses=ERRORS)
def jobs(request: Request, limit: int = Query(50, ge=1, le=200)):
    return {"jobs": request.app.state.rag.jobs.list()[:limit]}


@router.get(
    "/jobs/{id}",
    response_model=Job,
    dependencies=[READ],
    summary="A job's state, progress and result",
    responses={**ERRORS, 404: {"model": ErrorResponse, "description": "No such job"}},
)
def job(id: str, request: Request):
    """`state`: queued, running, succeeded or failed; `progress`: files and chunks done; `result`: the
    ingest report, whose `failed` lists files that could not be read (path, reason)."""
    found = request.app.state.rag.jobs.get(id)
    if found is None:
        raise ApiError(404, f"no job {id!r}")
    return found
