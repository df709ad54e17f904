"""Who may read what: the principals a document is readable by, and the reader a query runs as.

At sync time each document gets its readers (:func:`grant`): the principals of the first access rule whose
glob matches its path and, with ``[access] from_posix``, those its file's owner, group and mode let read
(``connectors.permissions``). A query runs as a :class:`Reader`; the store matches the reader's principals
against each point's inside every candidate list (``pipeline.stores.base``), never by dropping results
afterwards, so a document the reader may not read takes no place, lends no score and puts no word in a
prompt. Deny by default: with access control on, a document no rule and no permission bit grants is
readable by admins alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.config import PRINCIPAL, AccessConfig
from pipeline.errors import RaglineError
from pipeline.globs import glob_match

EVERYONE = "everyone"


def principal(text: str) -> str:
    """``text`` as a principal (``everyone``, ``user:NAME``, ``group:NAME``), or a one-line error naming it."""
    if not re.fullmatch(PRINCIPAL, text):
        raise RaglineError(f"{text!r} is not a principal: use everyone, user:NAME or group:NAME")
    return text


@dataclass(frozen=True)
class Reader:
    """Who a query runs as: the principals it holds, or an admin, who reads every document."""

    principals: frozenset[str] = frozenset()
    admin: bool = False
    name: str = ""
    """How logs and errors name the caller (an API key's name, a token's user)."""

    @classmethod
    def holding(cls, principals: Iterable[str], admins: Iterable[str] = (), name: str = "") -> Reader:
        """A caller with these principals (and ``everyone``); an admin when it holds one of ``admins``."""
        held = frozenset(principal(p) for p in principals) | {EVERYONE}
        return cls(held, bool(held & set(admins)), name)

    @classmethod
    def person(cls, user: str | None, groups: Iterable[str] = (), admins: Iterable[str] = ()) -> Reader:
        """The reader a user name and group names make (``--as user:alice --group hr`` on the CLI)."""
        held = [f"user:{user}"] if user else []
        return cls.holding([*held, *(f"group:{g}" for g in groups)], admins, user or "")

    @property
    def visible(self) -> tuple[str, ...] | None:
        """The principals a document must name to be read by this caller; None: any document (an admin)."""
        return None if self.admin else tuple(sorted(self.principals))


ADMIN = Reader(admin=True, name="admin")
"""The local reader: the CLI and the Python API run as it unless told otherwise."""


@dataclass(frozen=True)
class Grant:
    """Who may read one file, and why."""

    readers: tuple[str, ...]
    """Sorted principals; empty: admins alone."""
    rule: int | None = None
    """The 1-based number of the rule that matched (None: no rule did)."""
    posix: tuple[str, ...] = ()
    """The principals the file's permissions gave (``from_posix``)."""

    def explain(self, config: AccessConfig) -> list[str]:
        """One line per reason, as ``ragline access explain`` prints them."""
        lines = []
        if self.rule is None:
            lines.append(f"no rule matches ({len(config.rules)} rule(s) in [access] rules)")
        else:
            matched = config.rules[self.rule - 1]
            allowed = ", ".join(matched.allow) or "nobody"
            lines.append(f'rule {self.rule} (path "{matched.path}") allows {allowed}')
        if config.from_posix:
            lines.append(f"file permissions allow {', '.join(self.posix) or 'nobody'}")
        if not self.readers:
            lines.append("so only admins may read it (deny by default)")
        return lines


def matching_rule(source: str, absolute: str | None, config: AccessConfig) -> int | None:
    """The 1-based number of the first rule matching a file: a rule path starting with ``/`` is matched against
    its absolute path, any other against its path under the synced folder."""
    for number, rule in enumerate(config.rules, start=1):
        if rule.path.startswith("/"):
            if absolute is not None and glob_match(absolute.lstrip("/"), rule.path):
                return number
        elif glob_match(source, rule.path):
            return number
    return None


def grant(source: str, absolute: str | None, posix: Sequence[str], config: AccessConfig) -> Grant:
    """Who may read the file at ``source`` (under its folder; ``absolute``: on disk, None for documents with no
    file): the first matching rule's principals, and ``posix``, those its permissions give, when
    ``from_posix``."""
    number = matching_rule(source, absolute, config)
    allowed = config.rules[number - 1].allow if number is not None else ()
    from_files = tuple(sorted(set(posix))) if config.from_posix else ()
    return Grant(tuple(sorted({*allowed, *from_files})), number, from_files)
