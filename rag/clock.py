"""One timestamp format for everything localrag records: ISO 8601 in UTC."""

from datetime import datetime, timezone


def now(timespec: str = "seconds") -> str:
    """The current time, e.g. 2026-11-24T13:06:00+00:00 (timespec="microseconds" sorts finer)."""
    return datetime.now(timezone.utc).isoformat(timespec=timespec)


def iso(timestamp: float, timespec: str = "seconds") -> str:
    """A Unix time in the same format."""
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec=timespec)
