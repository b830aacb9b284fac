"""Finds the files of the configured sources: include/exclude globs, hidden files, symlinks.

Only regular files with UTF-8 names are returned; a FIFO, socket or device (reading would block
or never end) and a name the index cannot store are reported in `skipped` with the reason.
"""

import os
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from .loaders import SUPPORTED_TYPES, not_regular


@dataclass(frozen=True)
class Source:
    """A named folder of documents."""

    name: str
    root: Path
    include: tuple = ("**/*",)
    exclude: tuple = ()


@dataclass(frozen=True)
class SourceFile:
    """One file of a source, identified by source name and path relative to the source root."""

    source: Source
    path: Path
    relpath: str

    @property
    def document(self) -> str:
        """Deterministic document id."""
        return f"{self.source.name}:{self.relpath}"


@dataclass(frozen=True)
class Scope:
    """The part of a source that a scan covered: documents under it that were not seen are removed."""

    source: str
    prefix: str = ""

    def covers(self, source: str, relpath: str) -> bool:
        return source == self.source and (not self.prefix or relpath == self.prefix or relpath.startswith(self.prefix + "/"))


def matches(relpath: str, patterns) -> bool:
    """Glob match on a posix relative path; `**/` also matches at the top level."""
    return any(fnmatchcase(relpath, p) or (p.startswith("**/") and fnmatchcase(relpath, p[3:])) for p in patterns)


def scan(sources: list[Source], paths: list[Path] | None = None):
    """Returns (files, skipped, scopes). skipped is a list of (path, reason)."""
    files, skipped, scopes = [], [], []
    targets = [(source, source.root) for source in sources] if not paths else [locate(sources, Path(p)) for p in paths]
    for source, target in targets:
        prefix = relative(source.root, target)
        scopes.append(Scope(source.name, "" if prefix == "." else prefix))
        if not target.exists() and not target.is_symlink():
            skipped.append((shown(target), "not found"))
            continue
        candidates = [target] if not target.is_dir() else walk(target, skipped)
        for path in candidates:
            entry = check(source, path, skipped)
            if entry:
                files.append(entry)
    return sorted(set(files), key=lambda f: f.document), skipped, scopes


def locate(sources: list[Source], path: Path) -> tuple[Source, Path]:
    """The configured source containing path, else an ad-hoc source rooted at path."""
    path = Path(os.path.abspath(path))
    for source in sources:
        if path == source.root or source.root in path.parents:
            return source, path
    root = path if path.is_dir() else path.parent
    return Source(name=root.name or "local", root=root), path


def walk(folder: Path, skipped: list):
    """Files under folder, hidden entries left out; symlinked folders are not followed."""
    for top, dirs, names in os.walk(folder):
        top = Path(top)
        for name in list(dirs):
            if name.startswith("."):
                dirs.remove(name)
            elif (top / name).is_symlink():
                skipped.append((shown(top / name), "symlinked folder not followed"))
        for name in names:
            if not name.startswith("."):
                yield top / name


def check(source: Source, path: Path, skipped: list) -> SourceFile | None:
    """A SourceFile for a supported, included regular file inside the source root, else None."""
    relpath = relative(source.root, path)
    if not matches(relpath, source.include) or matches(relpath, source.exclude):
        return None
    if path.suffix.lower() not in SUPPORTED_TYPES:
        return None
    if not utf8(relpath):
        skipped.append((shown(path), "file name is not valid UTF-8"))
        return None
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(source.root.resolve()):
            skipped.append((shown(path), f"symlink leaves the source root (-> {shown(target)}); not followed"))
            return None
    try:
        reason = not_regular(path.stat().st_mode)
    except OSError:
        reason = None  # missing or unreadable: reading it reports why
    if reason:
        skipped.append((shown(path), reason))
        return None
    return SourceFile(source, path, relpath)


def utf8(name: str) -> bool:
    """False for a name with bytes that are not UTF-8 (decoded by Python as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(path: Path) -> str:
    """The path as printable text: bytes that are not UTF-8 appear as \\xff."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def relative(root: Path, path: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()
