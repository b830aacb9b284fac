"""HTML: readable text split into sections at h1..h6; page chrome (scripts, navigation,
site header and footer, search boxes, the pilcrow links of documentation generators) left out. Paragraphs are separated by blank lines, list items and
table rows by line breaks."""

import re
from pathlib import Path

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import PreformattedString

from .base import LoadedDocument, LoadError, Outline, first_line, joined
from .encoding import decode

DROP = {"script", "style", "noscript", "template", "nav", "svg", "canvas", "iframe", "object", "head", "title"}
# <header>/<footer> are the site banner and footer unless inside sectioning content.
CHROME = {"header", "footer"}
SECTIONING = {"article", "aside", "main", "section"}
# ARIA landmarks of page chrome (Sphinx, MkDocs and most site themes mark their sidebars and bars so)
CHROME_ROLES = {"navigation", "search", "banner", "contentinfo"}
# Classes of chrome without a role: permalink anchors ("¶") and Sphinx's footer
CHROME_CLASSES = {"headerlink", "footer"}
HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
BLOCKS = {
    "address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "details", "dialog",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "html",
    "legend", "main", "menu", "ol", "p", "section", "summary", "ul", "tr", "td", "th", "tbody", "thead",
}  # fmt: skip
META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
# WHATWG: these labels mean windows-1252.
LATIN1_LABELS = {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "ascii", "us-ascii", "l1"}
SPACE = re.compile(r"\s+")
# Elements at most: html.parser and the walk below spend ~20 µs and ~1.2 KB on each one
# (a 19 MB page of 1.7 million <p>: 33 s and 2 GB).
MAX_ELEMENTS = 500_000


def load(data: bytes, path: Path) -> LoadedDocument:
    text, encoding = decode(data, charset(data))
    if not text.strip():
        raise LoadError("empty file")
    if text.count("<") - text.count("</") > MAX_ELEMENTS:  # start tags, and a few "<" of text or script
        raise LoadError(f"HTML: more than {MAX_ELEMENTS:,} elements")
    soup = BeautifulSoup(text, "html.parser")

    title = " ".join(soup.title.get_text().split()) if soup.title else ""
    flow = Flow()
    flow.walk(soup)
    sections = joined(flow.close(), flow.outline)
    if not sections:
        raise LoadError("no text")
    title = title or flow.h1 or first_line(sections[0].text) or path.stem
    return LoadedDocument(title, "html", sections, encoding)


def charset(data: bytes) -> str | None:
    """The encoding a <meta charset> / http-equiv tag declares in the first 4 KB, if usable."""
    match = META_CHARSET.search(data[:4096])
    if not match:
        return None
    label = match.group(1).decode("ascii").lower()
    if label.startswith(("utf-16", "utf-32", "utf16", "utf32")):
        return None  # a declaration in an ASCII-compatible byte stream cannot be UTF-16
    return "cp1252" if label in LATIN1_LABELS else label


def hidden(tag: Tag) -> bool:
    return tag.has_attr("hidden") or tag.get("aria-hidden") == "true"


def chrome(tag: Tag, sectioning: bool) -> bool:
    """Page chrome: a navigation landmark, a permalink anchor, a site header or footer."""
    if tag.get("role") in CHROME_ROLES or not CHROME_CLASSES.isdisjoint(tag.get("class") or ()):
        return True
    return tag.name in CHROME and not sectioning


class Flow:
    """Walks the tree in document order and collects blocks of text per heading section."""

    def __init__(self):
        self.outline = Outline()
        self.parts: list[tuple[str, list[str], None]] = []
        self.blocks: list[str] = []
        self.inline: list[str] = []
        self.tight = False  # the last block is a list item: the next item joins it with a line break
        self.items = 0  # depth of open <li> elements
        self.sectioning = 0  # depth of open sectioning elements (article, main, ...)
        self.h1 = ""

    def walk(self, root: Tag):
        stack = [(root, False)]
        while stack:
            node, leaving = stack.pop()
            if leaving:
                self.flush()
                self.items -= node.name == "li"
                self.sectioning -= node.name in SECTIONING
            elif isinstance(node, NavigableString):
                if not isinstance(node, PreformattedString):
                    self.inline.append(SPACE.sub(" ", node))
            elif node.name in DROP or hidden(node) or chrome(node, self.sectioning > 0):
                continue
            elif node.name in HEADINGS:
                self.heading(HEADINGS[node.name], heading_text(node))
            elif node.name == "pre":
                self.block("\n".join(line.rstrip() for line in node.get_text().strip("\n").splitlines()))
            elif node.name == "table" and not node.find(["table", "p", "div", "ul", "ol", *HEADINGS]):
                self.block(table(node))
            elif node.name == "br":
                self.inline.append("\n")
            else:
                if node.name in BLOCKS or node.name in ("li", "table"):
                    self.flush()
                    stack.append((node, True))
                    self.sectioning += node.name in SECTIONING
                    if node.name == "li":
                        self.items += 1
                        self.inline.append("- ")
                stack.extend((child, False) for child in reversed(node.contents))

    def flush(self):
        """Ends the current block of inline text; inside a list item it joins the previous item."""
        if not self.inline:
            return
        lines = (" ".join(line.split()) for line in "".join(self.inline).split("\n"))
        text = "\n".join(line for line in lines if line)
        self.inline = []
        if text in ("", "-"):
            return
        tight = self.items > 0
        if tight and self.tight and self.blocks:
            self.blocks[-1] += "\n" + text
        else:
            self.blocks.append(text)
        self.tight = tight

    def block(self, text: str):
        self.flush()
        if text.strip():
            self.blocks.append(text)
            self.tight = False

    def heading(self, level: int, text: str):
        if not text:
            return
        self.close()
        self.outline.enter(level, text)
        self.h1 = self.h1 or (text if level == 1 else "")

    def close(self) -> list:
        """Ends the current section; returns all (text, heading, page) parts so far."""
        self.flush()
        if self.blocks:
            self.parts.append(("\n\n".join(self.blocks), self.outline.path, None))
        self.blocks, self.tight = [], False
        return self.parts


def heading_text(node: Tag) -> str:
    """A heading's words, without its permalink anchors."""
    words = []
    for text in node.find_all(string=True):
        parent = text.parent
        while parent is not node and not chrome(parent, True):
            parent = parent.parent
        if parent is node:
            words.append(text)
    return " ".join(" ".join(words).split())


def table(node: Tag) -> str:
    """A data table as text: one line per row, cells separated by " | "."""
    rows = []
    for row in node.find_all("tr"):
        cells = [" ".join(cell.get_text(" ").split()) for cell in row.find_all(["td", "th"])]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)
