"""Metadata filters: the `where` language and structured `filters`, parsed, checked and compiled to
txtai SQL with bound parameters, so no text a client sends is ever spliced into SQL.

    condition = Filter.parse("filetype = 'pdf' and (page <= 3 or source like 'guide/%')")
    condition = Filter.of({"collection": "docs", "filetype": ["md", "pdf"]})
    condition.text, condition.parameters   # "(filetype = :w0 AND ...)", {"w0": "pdf", ...}

The `where` language (case-insensitive keywords):

    comparison   column = | != | <> | < | <= | > | >= value
                 column [NOT] IN (value, ...)       column [NOT] LIKE 'pattern'
                 column IS [NOT] NULL               column [NOT] BETWEEN value AND value
    combined     with AND, OR, NOT and parentheses
    values       'text' (a quote inside is doubled: 'it''s'), integers and decimals
    columns      the chunk metadata (COLUMNS below)

Bounded: at most MAX_LENGTH characters, MAX_TERMS comparisons, MAX_VALUES values in a list and
MAX_DEPTH nested parentheses; parsing is linear in the length. Functions (e.g. similar()), other
columns, subqueries and anything else are refused with a message that says where.
"""

import re
from dataclasses import dataclass, field

from .index import COLUMNS as STORED

# Chunk metadata a filter may name (all that is stored with a chunk but the prefix length)
COLUMNS = tuple(column for column in STORED if column != "prefix")
MAX_LENGTH = 2000
MAX_TERMS = 50
MAX_VALUES = 100
MAX_DEPTH = 10
MAX_COLUMNS = 20  # structured filters

TOKENS = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><=|>=|<>|!=|=|<|>)|(?P<punct>[(),]))"
)
KEYWORDS = {"AND", "OR", "NOT", "IN", "LIKE", "IS", "NULL", "BETWEEN"}
OPERATORS = {"=", "!=", "<>", "<", "<=", ">", ">="}

Scalar = str | int | float | None


class FilterError(ValueError):
    """A filter that is not in the language, or too large."""


@dataclass
class Token:
    kind: str  # string, number, word, keyword, op, punct, end
    value: str
    position: int


@dataclass
class Filter:
    """A checked condition: SQL text with :placeholders and the values bound to them."""

    text: str
    parameters: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, where: str, builder: "Builder | None" = None) -> "Filter":
        """Parses the `where` language; raises FilterError naming the position of the problem."""
        if len(where) > MAX_LENGTH:
            raise FilterError(f"where: longer than {MAX_LENGTH} characters")
        builder = builder or Builder()
        return cls(Parser(tokenize(where), builder).condition(), builder.parameters)

    @classmethod
    def of(cls, filters: dict[str, Scalar | list[Scalar]], builder: "Builder | None" = None) -> "Filter":
        """Equality filters combined with AND; a list means any of its values; None means no value."""
        if len(filters) > MAX_COLUMNS:
            raise FilterError(f"filters: more than {MAX_COLUMNS} columns")
        builder = builder or Builder()
        parts = []
        for column, wanted in filters.items():
            column = checked_column(column, "filters")
            values = wanted if isinstance(wanted, list) else [wanted]
            if len(values) > MAX_VALUES:
                raise FilterError(f"filters.{column}: more than {MAX_VALUES} values")
            given = [value for value in values if value is not None]
            for value in given:
                if not isinstance(value, str | int | float) or isinstance(value, bool):
                    raise FilterError(f"filters.{column}: values are text or numbers (got {value!r})")
            alternatives = [f"{column} IN ({', '.join(builder.bind(value) for value in given)})"] if given else []
            if len(given) < len(values):
                alternatives.append(f"{column} IS NULL")
            parts.append(f"({' OR '.join(alternatives)})" if alternatives else "1 = 0")
        return cls(" AND ".join(parts), builder.parameters)


def combine(where: str | None = None, filters: dict | None = None) -> Filter | None:
    """The `where` text and the structured `filters` as one Filter (None when neither is given)."""
    builder, parts = Builder(), []
    if where and where.strip():
        parts.append(Filter.parse(where, builder).text)
    if filters:
        parts.append(Filter.of(filters, builder).text)
    return Filter(" AND ".join(f"({part})" for part in parts), builder.parameters) if parts else None
def checked_column(name: str, where: str) -> str:
    column = str(name).lower()
    if column not in COLUMNS:
        raise FilterError(f"{where}: unknown column {name!r}; columns: {', '.join(COLUMNS)}")
    return column


def tokenize(text: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(text):
        match = TOKENS.match(text, position)
        if not match or match.end() == position:
            if text[position:].strip() == "":
                break
            raise FilterError(f"where: unexpected {text[position:position + 12].strip()!r} at position {position + 1}")
        kind = match.lastgroup
        value, start = match.group(kind), match.start(kind)
        if kind == "word" and value.upper() in KEYWORDS:
            kind, value = "keyword", value.upper()
        tokens.append(Token(kind, value, start + 1))
        position = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


class Builder:
    """Collects bound values as :w0, :w1, ..."""

    def __init__(self):
        self.parameters = {}

    def bind(self, value) -> str:
        name = f"w{len(self.parameters)}"
        self.parameters[name] = value
        return f":{name}"


class Parser:
    """Recursive descent over the tokens: or > and > not > comparison."""

    def __init__(self, tokens: list[Token], builder: Builder):
        self.tokens, self.index = tokens, 0
        self.builder = builder
        self.terms = self.depth = 0

    def condition(self) -> str:
        text = self.disjunction()
        self.expect("end", what="end of the filter")
        return text

    # ---- grammar -------------------------------------------------------------

    def disjunction(self) -> str:
        parts = [self.conjunction()]
        while self.accept("keyword", "OR"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def conjunction(self) -> str:
        parts = [self.negation()]
        while self.accept("keyword", "AND"):
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def negation(self) -> str:
        if self.accept("keyword", "NOT"):
            return f"NOT {self.negation()}"
        if self.accept("punct", "("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                self.fail(f"more than {MAX_DEPTH} nested parentheses")
            text = self.disjunction()
            self.expect("punct", ")")
            self.depth -= 1
            return f"({text})"
        return self.comparison()

    def comparison(self) -> str:
        token = self.expect("word", what="a column name")
        column = checked_column(token.value, f"where (position {token.position})")
        self.terms += 1
        if self.terms > MAX_TERMS:
            self.fail(f"more than {MAX_TERMS} comparisons")
        if self.accept("keyword", "IS"):
            negated = self.accept("keyword", "NOT")
            self.expect("keyword", "NULL")
            return f"{column} IS {'NOT ' if negated else ''}NULL"
        negated = "NOT " if self.accept("keyword", "NOT") else ""
        if self.accept("keyword", "IN"):
            self.expect("punct", "(")
            values = [self.value()]
            while self.accept("punct", ","):
                values.append(self.value())
                if len(values) > MAX_VALUES:
                    self.fail(f"more than {MAX_VALUES} values in a list")
            self.expect("punct", ")")
            return f"{column} {negated}IN ({', '.join(values)})"
        if self.accept("keyword", "LIKE"):
            return f"{column} {negated}LIKE {self.value(kinds=('string',))}"
        if self.accept("keyword", "BETWEEN"):
            low = self.value()
            self.expect("keyword", "AND")
            return f"{column} {negated}BETWEEN {low} AND {self.value()}"
        if negated:
            self.fail("expected IN, LIKE or BETWEEN after NOT")
        operator = self.expect("op", what="a comparison (=, !=, <, <=, >, >=, IN, LIKE, IS, BETWEEN)").value
        return f"{column} {operator} {self.value()}"

    def value(self, kinds=("string", "number")) -> str:
        token = self.peek()
        if token.kind not in kinds:
            self.fail(f"expected {' or '.join(kinds)} value")
        self.index += 1
        if token.kind == "string":
            return self.builder.bind(token.value[1:-1].replace("''", "'"))
        number = float(token.value) if "." in token.value else int(token.value)
        return self.builder.bind(number)

    # ---- tokens ----------------------------------------------------------------

    def peek(self) -> Token:
        return self.tokens[self.index]

    def accept(self, kind: str, value: str | None = None) -> Token | None:
        token = self.peek()
        if token.kind == kind and (value is None or token.value == value):
            self.index += 1
            return token
        return None

    def expect(self, kind: str, value: str | None = None, what: str | None = None) -> Token:
        token = self.accept(kind, value)
        if token is None:
            self.fail(f"expected {what or value or kind}")
        return token

    def fail(self, message: str):
        token = self.peek()
        found = f"{token.value!r}" if token.kind != "end" else "the end"
        raise FilterError(f"where: {message} at position {token.position} (found {found})")
