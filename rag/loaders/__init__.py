"""Document loaders: a file in, plain-text sections with heading path and page out.

    from rag.loaders import load_file, read_file, LoadError
    document = load_file(Path("guide/install.md"), max_bytes=20 * 1024 * 1024)
    data = read_file(Path("guide/install.md"), max_bytes=20 * 1024 * 1024)  # the bytes only

Each file type has its own module (markdown, text, html, pdf, docx), imported on first use.
Every failure is a LoadError with a short reason a user can act on. Files are read by
`read_file` (regular files only, never blocking); compressed formats are bounded before they
are parsed (see the limits in docx.py and pdf.py).
"""

import importlib
from pathlib import Path

from .base import LoadedDocument, LoadError, Section, first_line
from .files import check_size, not_regular, read_file

__all__ = [
    "LoadError", "LoadedDocument", "SUPPORTED_TYPES", "Section", "first_line", "load_bytes", "load_file", "not_regular", "read_file"
]  # fmt: skip

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
    """Loads a supported file with `read_file`: the size limit is checked before the content is read.

    Pass `data` when the bytes were already read (e.g. to hash them) to avoid a second read.
    Raises LoadError.
    """
    path = Path(path)
    filetype = filetype_of(path)
    if data is None:
        data = read_file(path, max_bytes)
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
