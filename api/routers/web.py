"""The web page: GET / and its static files under /web/. Open without an API key (the page holds
no data; it calls the API, which asks for a key), served with a strict Content-Security-Policy."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from ..errors import ApiError

router = APIRouter(include_in_schema=False)

FOLDER = Path(__file__).resolve().parent.parent / "web"
FILES = {"app.js": "text/javascript", "style.css": "text/css", "icon.svg": "image/svg+xml"}  # nothing else is served
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@router.get("/")
def page():
    return FileResponse(FOLDER / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/web/{name}")
def static(name: str):
    if name not in FILES:
        raise ApiError(404, f"no file {name!r}")
    return FileResponse(FOLDER / name, media_type=FILES[name], headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})
