"""An SVG upload read as XML, piece by piece: refused if it could run script.

An SVG opened from the app's origin is a document like an HTML page: a ``<script>``,
an ``onload=`` or a ``javascript:`` link in it runs with the app's cookies. Pattern
matching on bytes misses ``&#x6A;avascript:`` and ``<x:script xmlns:x=…>``, so the
file is parsed (expat, fed as it streams) and judged on elements, attributes and
character data as the browser would see them. A DOCTYPE is refused outright: it is
where entities live (expansion bombs, external files), and no drawing needs one.
"""

from __future__ import annotations

import re
from typing import NoReturn
from xml.parsers import expat

SVG_NS = "http://www.w3.org/2000/svg"
_ACTIVE_ELEMENTS = frozenset(
    {"script", "foreignobject", "iframe", "embed", "object", "handler", "listener"}
)
_ACTIVE_VALUE = re.compile(r"(?:java|vb)script:|data:\s*text/html|expression\(|@import", re.I)
_IGNORED_IN_VALUES = re.compile(r"[\x00-\x20]+")


class _Refused(Exception):
    """Raised by a handler to end parsing: the file is refused."""


class SvgCheck:
    """Feed an SVG file's bytes in order; ``problem`` says why it is refused, if it is."""

    def __init__(self) -> None:
        self.problem: str | None = None
        self._root_seen = False
        self._parser = expat.ParserCreate(namespace_separator=" ")
        self._parser.buffer_text = True  # one text callback per run, not per piece
        self._parser.StartDoctypeDeclHandler = self._doctype
        self._parser.EntityDeclHandler = self._entity
        self._parser.ProcessingInstructionHandler = self._instruction
        self._parser.StartElementHandler = self._element
        self._parser.CharacterDataHandler = self._text
        self._parser.ExternalEntityRefHandler = self._external

    def feed(self, data: bytes, *, final: bool = False) -> str | None:
        """Parse the next piece (``final``: the last one); returns ``problem``."""
        if self.problem is not None:
            return self.problem
        try:
            self._parser.Parse(data, final)
        except _Refused:
            return self.problem
        except expat.ExpatError as error:
            self.problem = f"it is not well-formed XML ({expat.ErrorString(error.code)})"
        if final and not self._root_seen and self.problem is None:
            self.problem = "it has no <svg> element"
        return self.problem

    def _refuse(self, why: str) -> NoReturn:
        """Stop parsing at once (an exception from a handler ends ``Parse``): nothing
        after a DOCTYPE is read, so no entity is ever expanded."""
        self.problem = why
        raise _Refused

    def _doctype(self, *_: object) -> None:
        self._refuse("it declares a DOCTYPE")

    def _entity(self, *_: object) -> None:
        self._refuse("it declares an entity")

    def _external(self, *_: object) -> int:
        self._refuse("it refers to an external entity")

    def _instruction(self, target: str, _data: str) -> None:
        self._refuse(f"it carries a processing instruction <?{target[:30]}?>")

    def _element(self, name: str, attributes: dict[str, str]) -> None:
        namespace, _, local = name.rpartition(" ")
        if not self._root_seen:
            self._root_seen = True
            if (namespace, local) != (SVG_NS, "svg"):
                self._refuse("its root element is not an SVG <svg>")
        if local.lower() in _ACTIVE_ELEMENTS:
            self._refuse(f"it holds a <{local[:30]}> element, which can run script")
        for attribute, value in attributes.items():
            bare = attribute.rpartition(" ")[2].lower()
            if bare.startswith("on"):
                self._refuse(f"it has an event handler attribute ({bare[:30]})")
            if _ACTIVE_VALUE.search(_IGNORED_IN_VALUES.sub("", value)):
                self._refuse(f"its {bare[:30]!r} attribute holds a script link")

    def _text(self, data: str) -> None:
        if _ACTIVE_VALUE.search(_IGNORED_IN_VALUES.sub("", data)):
            self._refuse("its text holds a script link or a style import")
