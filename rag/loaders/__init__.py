"""Document loaders: a file in, plain-text sections with heading path and page out.

    from rag.loaders import load_file, LoadError
    document = load_file(Path("guide/install.md"), max_bytes=20 * 1024 * 1024)

Each file type has its own module (markdown, text, html, pdf, docx), imported on first use.
Every failure is a LoadError with a short reason a user can act on.
"""

import importlib
from pathlib import Path

from .base import LoadedDocument, LoadError, Section, human_size

__all__ = ["LoadError", "LoadedDocument", "SUPPORTED_TYPES", "Section", "load_bytes", "load_file"]

SUPPORTED_TYPES = {
    ".md": "md",
    ".markdown": "md",
    ".txt": "txt",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}
MODULES = {"md": "markdown", "txt": "text", "html": "html", "pdf": "pdf", "docx": "docx"}


def load_file(path: Path, max_bytes: int | None = None, data: bytes | None = None) -> LoadedDocument:
    """Loads a supported file. The size limit is checked before the content is read.

    Pass `data` when the bytes were already read (e.g. to hash them) to avoid a second read.
    Raises LoadError.
    """
    path = Path(path)
    filetype = filetype_of(path)
    if data is None:
        data = read(path, max_bytes)
    check_size(len(data), max_bytes)
    return load_bytes(data, path, filetype)


def load_bytes(data: bytes, path: Path, filetype: str | None = None) -> LoadedDocument:
    """Loads content already in memory; `path` names it (extension, title fallback)."""
    path = Path(path)
    filetype = filetype or filetype_of(path)
    if not data.strip():
        raise LoadError("empty file")
    module = importlib.import_module(f".{MODULES[filetype]}", __name__)
    return module.load(data, path)


def filetype_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_TYPES:
        raise LoadError(f"unsupported file type {suffix or '(no extension)'}")
    return SUPPORTED_TYPES[suffix]


def check_size(size: int, max_bytes: int | None):
    if max_bytes is not None and size > max_bytes:
        raise LoadError(f"file too large ({human_size(size)} > {human_size(max_bytes)})")


def read(path: Path, max_bytes: int | None) -> bytes:
    """The file's bytes; stat first so an oversized file is refused unread."""
    try:
        info = path.stat()
        if not path.is_file():
            raise LoadError("not a regular file")
        check_size(info.st_size, max_bytes)
        if info.st_size == 0:
            raise LoadError("empty file")
        with open(path, "rb") as handle:
            # a file that grows after stat() is still caught by the size check of the caller
            return handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    except PermissionError:
        raise LoadError("permission denied") from None
    except FileNotFoundError:
        raise LoadError("file not found") from None
    except IsADirectoryError:
        raise LoadError("not a regular file") from None
    except OSError as error:
        raise LoadError((error.strerror or str(error)).lower()) from None
