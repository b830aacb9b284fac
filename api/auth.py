"""API keys: `Authorization: Bearer <key>` or `X-API-Key: <key>`, with read and write scopes.

Keys come from `api.api_keys` in config.yml, in plain (usually `${ENV_VAR}`) or as a SHA-256 digest.
A request's key is hashed and compared with every configured digest in constant time. With no
keys configured the API is open (local use on 127.0.0.1). /health, /ready and the docs are always open.

    from api.auth import READ, WRITE
    @router.post("/things", dependencies=[WRITE])
"""

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from rag.config import ApiKey

from .errors import ApiError

bearer = HTTPBearer(auto_error=False, scheme_name="bearer", description="An API key as `Authorization: Bearer <key>`.")
header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKey", description="An API key as `X-API-Key: <key>`.")


@dataclass(frozen=True)
class Key:
    name: str
    digest: bytes
    scopes: frozenset


class Keys:
    """The configured keys; `identify` finds the key a request presented."""

    def __init__(self, keys: dict[str, ApiKey]):
        self.keys = [
            Key(name, key.digest(name), frozenset(key.scopes) | ({"read"} if "write" in key.scopes else set())) for name, key in keys.items()
        ]

    @property
    def open(self) -> bool:
        return not self.keys

    def identify(self, presented: str) -> Key | None:
        """The key whose digest matches; every digest is compared, each in constant time."""
        digest = hashlib.sha256(presented.encode("utf-8")).digest()
        found = None
        for key in self.keys:
            if hmac.compare_digest(key.digest, digest):
                found = key
        return found


def authorize(
    scopes: SecurityScopes,
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    api_key: str | None = Depends(header),
) -> str | None:
    """Checks the request's key against the scopes the route needs; returns the key's name."""
    keys: Keys = request.app.state.keys
    if keys.open:
        return None
    presented = api_key or (credentials.credentials if credentials else None)
    challenge = {"WWW-Authenticate": "Bearer"}
    if not presented:
        raise ApiError(401, "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`", headers=challenge)
    key = keys.identify(presented)
    if key is None:
        raise ApiError(401, "invalid API key", headers=challenge)
    missing = [scope for scope in scopes.scopes if scope not in key.scopes]
    if missing:
        raise ApiError(
            403,
            f"the API key {key.name!r} lacks the {', '.join(missing)} scope",
            details={"needs": scopes.scopes, "has": sorted(key.scopes)},
        )
    request.state.api_key = key.name
    return key.name


READ = Security(authorize, scopes=["read"])
WRITE = Security(authorize, scopes=["write"])
