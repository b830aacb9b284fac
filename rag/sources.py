"""Finds the files of the configured sources: include/exclude globs, hidden files, symlinks."""

import os
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from .loaders import SUPPORTED_TYPES


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
            skipped.append((str(target), "not found"))
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
                skipped.append((str(top / name), "symlinked folder not followed"))
        for name in names:
            if not name.startswith("."):
                yield top / name


def check(source: Source, path: Path, skipped: list) -> SourceFile | None:
    """A SourceFile for a supported, included file inside the source root, else None."""
    relpath = relative(source.root, path)
    if not matches(relpath, source.include) or matches(relpath, source.exclude):
        return None
    if path.suffix.lower() not in SUPPORTED_TYPES:
        return None
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(source.root.resolve()):
            skipped.append((str(path), f"symlink leaves the source root (-> {target}); not followed"))
            return None
    return SourceFile(source, path, relpath)


def relative(root: Path, path: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()
