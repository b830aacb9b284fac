"""localrag's own steps as txtai workflow actions.

Each action is a class built once per task with the task's `args`; txtai calls it with a batch of
elements and it returns one result per element (a list result fans out into several elements,
txtai's one-to-many). Actions with `start`/`finish` are wired as the task's txtai
initialize/finalize hooks, so they run once per workflow run.

    name      element in                           element(s) out
    load      path | source name | "*"             documents: id, collection, source, title, filetype, hash, text, sections
    chunk     document | text                      chunks: id, text, document, source, title, heading, page, chunk, ...
    upsert    chunk | document | text              the same element; all are written as one new index version at the end
    delete    document id                          {id, chunks_removed, file_removed} (or error: not found)
    ingest    path | source name | "*"             one ingest report for the batch (the code of `rag ingest`)
    search    query                                {query, hits}
    questions questions file | question            one element per question (text lines or JSONL)
    ask       question | {question, id, top_k, history}   grounded answer with citations
    prompt    text | document                      the LLM's reply (or the element with the reply in `field`)
    jsonl     anything                             the same element, written as one JSON line to `output`
    markdown  document with `field`                {id, source, title, field, report}, written into a Markdown report
"""

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

from ..clock import now
from ..prompts import shorten
from .errors import WorkflowError
from .progress import current

logger = logging.getLogger("rag.workflows")

ALL_SOURCES = "*"
QUESTION_KEYS = ("question", "query", "q", "text")


class Action:
    """A localrag step used as a txtai action: called with a batch of elements."""

    name = ""

    def __init__(self, service):
        self.service = service

    @property
    def config(self):
        return self.service.config

    def __call__(self, elements):
        progress = current().progress
        progress.action(self.name, len(elements))
        results = []
        for element in elements:
            results.append(self.each(element))
            progress.advance(1)
        return results

    def each(self, element):
        raise NotImplementedError

    def __repr__(self):
        return f"<action {self.name}>"


class Load(Action):
    """Loads files as text: a path (file or folder), a source name or "*" -> one document per file."""

    name = "load"

    def each(self, element):
        files, skipped = self.files(element)
        documents = [self.document(entry) for entry in files]
        documents += [{"id": path, "source": path, "error": reason} for path, reason in skipped]
        return documents

    def files(self, element):
        """(files, skipped) that the element names."""
        if isinstance(element, dict):
            element = element.get("path") or element.get("source") or ""
        value = str(element).strip()
        sources = self.service.sources()
        named = [source for source in sources if source.name == value]
        if value == ALL_SOURCES or named:
            return self.service.scan(sources=sources if value == ALL_SOURCES else named)
        if path := named_path(self.config, value):
            return self.service.scan([path])
        return [], [(value, "not found: no such file, folder or source")]

    def document(self, entry) -> dict:
        from ..loaders import LoadError

        info = {"id": entry.document, "collection": entry.source.name, "source": entry.relpath, "path": str(entry.path)}
        try:
            loaded, digest = self.service.load(entry)
        except LoadError as error:
            return {**info, "error": error.reason}
        except Exception as error:  # a loader bug must not lose the other documents (as in ingestion)
            return {**info, "error": f"{type(error).__name__}: {error}"}
        return {
            **info,
            "title": loaded.title,
            "filetype": loaded.filetype,
            "hash": digest,
            "text": "\n\n".join(section.text for section in loaded.sections),
            "sections": [asdict(section) for section in loaded.sections],
        }


class Chunk(Action):
    """Splits documents (from `load`) or plain texts into index chunks, exactly as ingestion does."""

    name = "chunk"

    def each(self, element) -> list[dict]:
        from ..loaders import Section, first_line
        from ..manifest import DocumentRecord

        if isinstance(element, dict) and element.get("error"):
            return []
        document = element if isinstance(element, dict) else {"text": str(element)}
        text = document.get("text") or ""
        sections = [Section(**s) if isinstance(s, dict) else s for s in document.get("sections") or []]
        sections = sections or ([Section(text)] if text.strip() else [])
        digest = document.get("hash") or hashlib.sha256(text.encode("utf-8")).hexdigest()
        collection = document.get("collection") or "workflow"
        source = str(document.get("source") or document.get("id") or digest[:16])
        title = document.get("title") or first_line(text) or source
        record = DocumentRecord(
            collection=collection, source=source, hash=digest, title=title, filetype=document.get("filetype") or "txt", chunks=0
        )
        rows = self.service.chunk(f"{collection}:{source}", record, title, sections)
        return [{"id": uid, **data} for uid, data in rows]


class Upsert(Action):
    """Adds chunks (documents and texts are chunked first) to the index: one new version per run.

    Elements pass through unchanged; they are written when the run's last batch is done (like
    txtai's own upsert action). A document already in the index has its old chunks replaced.
    """

    name = "upsert"

    def __init__(self, service):
        super().__init__(service)
        self.chunk = Chunk(service)
        self.rows: list = []

    def start(self):
        self.rows = []

    def __call__(self, elements):
        progress = current().progress
        progress.action(self.name, len(elements))
        for element in elements:
            chunks = [element] if is_chunk(element) else self.chunk.each(element)
            self.rows.extend((chunk["id"], {k: v for k, v in chunk.items() if k not in ("id", "score")}) for chunk in chunks)
            progress.advance(1)
        return elements

    def finish(self):
        rows, self.rows = self.rows, []
        if rows:
            write_chunks(self.service, rows, current().progress)


class Delete(Action):
    """Removes documents (by id, e.g. "docs:guide/install.md") from the index without a rebuild."""

    name = "delete"

    def each(self, element):
        from ..service import DocumentNotFound

        uid = element.get("document") or element.get("id") if isinstance(element, dict) else str(element)
        try:
            return self.service.delete(uid)
        except DocumentNotFound:
            return {"id": uid, "error": "not found"}


class Ingest(Action):
    """Syncs sources into the index with the code of `rag ingest`: paths, source names or "*" (all)."""

    name = "ingest"

    def __init__(self, service, rebuild: bool = False):
        super().__init__(service)
        self.rebuild = rebuild

    def __call__(self, elements):
        progress = current().progress
        progress.action(self.name, len(elements))
        report = self.service.ingest(self.paths(elements), rebuild=self.rebuild, progress=progress)
        progress.advance(len(elements))
        # One report for the whole batch: the other elements fan out into nothing
        return [report.to_dict()] + [[] for _ in elements[1:]]

    def paths(self, elements) -> list[Path] | None:
        """None (every source) for "*"; else paths, with source names mapped to their folders."""
        values = [str(e).strip() for e in elements if e is not None and str(e).strip()]
        if not values or ALL_SOURCES in values:
            return None
        sources = {s.name: self.config.resolve(s.path) for s in self.config.ingest.sources}
        return [sources.get(v) or named_path(self.config, v) or Path(v) for v in values]


class Search(Action):
    """Searches the index: query -> {query, hits}."""

    name = "search"

    def __init__(self, service, limit: int | None = None, mode: str | None = None, where: str | None = None):
        super().__init__(service)
        self.limit, self.mode, self.where = limit, mode, where

    def each(self, element):
        query = question_of(element)
        where = element.get("where", self.where) if isinstance(element, dict) else self.where
        hits = self.service.search(query, limit=self.limit, mode=self.mode, where=where)
        return {"query": query, "hits": [hit.to_dict() for hit in hits]}


class Questions(Action):
    """Reads questions: a file (one per line, or JSON lines) -> one element per question; other text is a question."""

    name = "questions"

    def each(self, element):
        if isinstance(element, dict):
            return [element]
        path = named_path(self.config, element)
        if path is None or not path.is_file():
            return [element]
        lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
        lines = [line for line in lines if line and not line.startswith("#")]
        jsonl = path.suffix.lower() in (".jsonl", ".json") or (lines and lines[0].startswith("{"))
        questions = []
        for number, line in enumerate(lines, 1):
            if not jsonl:
                questions.append(line)
                continue
            try:
                questions.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise WorkflowError(f"{path}:{number}: not a JSON line ({error.msg})") from None
        return questions


class Ask(Action):
    """Answers questions from the index with citations (the answer pipeline of `rag ask`)."""

    name = "ask"

    def __init__(self, service, top_k: int | None = None, where: str | None = None):
        super().__init__(service)
        self.top_k, self.where = top_k, where

    def each(self, element):
        from ..llm.errors import LLMError

        question = question_of(element)
        options = element if isinstance(element, dict) else {}
        head = {"id": options["id"]} if "id" in options else {}
        try:
            answer = self.service.ask(
                question, top_k=options.get("top_k", self.top_k), where=options.get("where", self.where), history=options.get("history")
            )
        except LLMError as error:  # recorded per question: the other answers are kept
            return {**head, "question": question, "answer": "", "complete": False, "error": str(error), "error_type": type(error).__name__}
        return {**head, **answer.to_dict()}


class Prompt(Action):
    """Sends a prompt to the configured LLM: `template` filled from the element ({text}, {title}, ...).

    Returns the reply, or with `field` the element with the reply stored under that key. A text too
    long for the model's window is shortened (and `truncated: true` is set with `field`).
    """

    name = "prompt"

    def __init__(self, service, template: str = "{text}", system: str | None = None, field: str | None = None, max_tokens: int | None = None, temperature: float | None = None):
        super().__init__(service)
        self.template, self.system, self.field = template, system, field
        self.max_tokens, self.temperature = max_tokens, temperature

    def each(self, element):
        if isinstance(element, dict) and element.get("error"):
            return element
        values = dict(element) if isinstance(element, dict) else {"text": "" if element is None else str(element)}
        llm = self.service.llm
        messages, truncated = self.fit(llm, values)
        reply = llm.chat(messages, max_tokens=self.max_tokens, temperature=self.temperature).strip()
        if not self.field:
            return reply
        result = dict(element) if isinstance(element, dict) else {"text": values["text"]}
        result[self.field] = reply
        if truncated:
            result["truncated"] = True
        return result

    def messages(self, values: dict, text: str | None = None) -> list[dict]:
        if text is not None:
            values = {**values, "text": text}
        try:
            content = self.template.format_map(values)
        except KeyError as error:
            raise WorkflowError(f"prompt template field {{{error.args[0]}}} is not in the element (fields: {', '.join(sorted(values))})") from None
        return ([{"role": "system", "content": self.system}] if self.system else []) + [{"role": "user", "content": content}]

    def fit(self, llm, values: dict) -> tuple[list[dict], bool]:
        """Messages within the window: the element's text is cut at a word boundary if needed."""
        budget = llm.context_window - (self.max_tokens or llm.max_tokens) - self.config.answer.safety_margin
        messages = self.messages(values)
        text = values.get("text")
        if llm.count_messages(messages) <= budget or not isinstance(text, str) or not text:
            return messages, False
        text = shorten(text, lambda text: llm.count_messages(self.messages(values, text)) <= budget)
        if text is None:
            raise ValueError(f"the prompt does not fit the model's window ({llm.context_window} tokens) even without the text")
        return self.messages(values, text), True


class Writer(Action):
    """Base of actions that write a file per run: truncated when the run starts."""

    def __init__(self, service, output: str):
        super().__init__(service)
        self.output = output
        self.path = None

    def start(self):
        self.path = self.config.resolve(self.output)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(self.header(), encoding="utf-8")
        current().outputs.append(str(self.path))

    def header(self) -> str:
        return ""

    def append(self, text: str):
        if self.path is None:  # run outside a workflow run (no initialize hook)
            self.start()
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(text)


class Jsonl(Writer):
    """Writes each element as one JSON line to `output` (relative to config.yml); passes it on."""

    name = "jsonl"

    def __call__(self, elements):
        self.append("".join(json.dumps(element, ensure_ascii=False, default=str) + "\n" for element in elements))
        return elements


class Markdown(Writer):
    """Writes a Markdown report: one section per document with its `field` and its source."""

    name = "markdown"

    def __init__(self, service, output: str, title: str = "Report", field: str = "summary"):
        super().__init__(service, output)
        self.title, self.field = title, field

    def header(self) -> str:
        run = current()
        stamp = now()
        made = f"workflow `{run.workflow}`, " if run.workflow else ""
        return f"# {self.title}\n\n_{made}{stamp}_\n\n"

    def __call__(self, elements):
        progress = current().progress
        progress.action(self.name, len(elements))
        self.append("".join(self.section(element) for element in elements))
        progress.advance(len(elements))
        return [self.summary(element) for element in elements]

    def section(self, element) -> str:
        if not isinstance(element, dict):
            return f"{element}\n\n"
        name = element.get("title") or element.get("source") or element.get("id") or "(untitled)"
        where = ":".join(str(p) for p in (element.get("collection"), element.get("source")) if p) or str(element.get("id", ""))
        body = f"_Not summarized: {element['error']}_" if element.get("error") else str(element.get(self.field, "")).strip()
        note = " (document shortened to fit the model's window)" if element.get("truncated") else ""
        return f"## {name}\n\n{body}\n\nSource: `{where}`{note}\n\n"

    def summary(self, element):
        if not isinstance(element, dict):
            return element
        keys = ("id", "collection", "source", "title", self.field, "truncated", "error")
        return {**{key: element[key] for key in keys if key in element}, "report": str(self.path)}


ACTIONS: dict[str, type[Action]] = {
    action.name: action for action in (Load, Chunk, Upsert, Delete, Ingest, Search, Questions, Ask, Prompt, Jsonl, Markdown)
}


def write_chunks(service, rows: list, progress):
    """Upserts (id, data) chunk rows as one new index version."""
    report = service.upsert(rows, progress)
    logger.info("upsert: %d chunks of %d documents written", len(rows), len(report.added) + len(report.updated))


def is_chunk(element) -> bool:
    return isinstance(element, dict) and {"id", "text", "document", "chunk"} <= element.keys()


def question_of(element) -> str:
    if isinstance(element, dict):
        for key in QUESTION_KEYS:
            if element.get(key):
                return str(element[key])
        raise WorkflowError(f"no question in {element!r}: expected one of the keys {', '.join(QUESTION_KEYS)}")
    return "" if element is None else str(element)


def named_path(config, value) -> Path | None:
    """An existing path named by value: relative to the working directory, else to config.yml's folder.

    In a confined run (started over HTTP) only paths inside the sources and the uploads folder
    may be named: anything else is refused, so an API client cannot read other files of the server.
    """
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        return None
    path = Path(value).expanduser()
    for candidate in [path] if path.is_absolute() else [Path.cwd() / path, config.root / path]:
        try:
            if candidate.exists():
                return confine(config, Path(os.path.abspath(candidate)), value)
        except OSError:  # e.g. a long question is not a file name
            return None
    return None


def confine(config, path: Path, value) -> Path:
    if not current().confined or config.within_sources(path):
        return path
    raise WorkflowError(f"{value}: outside the configured sources; over HTTP only files under the sources or uploads can be named")
