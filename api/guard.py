"""What a web page in the user's browser may do with the API: nothing it was not allowed to.

Two middlewares, added by create_app:

- Starlette's TrustedHostMiddleware with `trusted_hosts(config)`: bound to loopback, only
  localhost names are served, so a DNS-rebinding page (evil.example resolving to 127.0.0.1) gets
  400, not the API.
- `SameOriginWrites`: a POST, PUT, PATCH or DELETE sent by a page of another origin (its `Origin`
  header is not this server and not in api.cors_origins) gets 403 before it runs. Browsers send
  `Origin` on every cross-origin write, forms and multipart uploads included; the web page served
  at `/` is same-origin.
"""

import ipaddress
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from rag.config import Config

from .errors import body

LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"]
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def trusted_hosts(config: Config) -> list[str]:
    """api.allowed_hosts; by default localhost names (and api.host) when bound to loopback, else any."""
    settings = config.api
    if settings.allowed_hosts is not None:
        return settings.allowed_hosts
    if not loopback(settings.host):
        return ["*"]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return list(dict.fromkeys([*LOOPBACK_NAMES, host]))


def same_origin(origin: str, host: str) -> bool:
    """True when `origin` (scheme://host[:port]) names the server the request was sent to (its Host)."""
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc in (host, host.removesuffix(DEFAULT_PORTS.get(parts.scheme, "")))


class SameOriginWrites:
    """Answers 403 to a write whose `Origin` is neither this server nor an allowed CORS origin."""

    def __init__(self, app, allowed: list[str]):
        self.app = app
        self.any = "*" in allowed
        self.allowed = {origin.rstrip("/").lower() for origin in allowed}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in WRITES:
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None and not self.permits(origin.lower(), headers.get("host", "").lower()):
                message = f"cross-origin {scope['method']} from {origin[:100]} refused: neither this server nor in api.cors_origins"
                response = JSONResponse(body(scope["path"], "cross_origin", message), 403)
                return await response(scope, receive, send)
        await self.app(scope, receive, send)

    def permits(self, origin: str, host: str) -> bool:
        return self.any or origin.rstrip("/") in self.allowed or same_origin(origin, host)
