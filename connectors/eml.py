"""E-mail (.eml): the subject is the title; the body is the text part, else the HTML part.

Attachments are not read. Sender, recipients and date go into metadata.
"""

from __future__ import annotations

from email import policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser

from pipeline.types import Section

from ._text import Parsed, clean_text, repair_mojibake


def _content(part: MIMEPart) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError):  # unknown or wrong charset label
        payload = part.get_payload(decode=True)
        raw = payload if isinstance(payload, bytes) else b""
        return raw.decode("utf-8", errors="replace")


def parse(data: bytes) -> Parsed:
    """Parse with the stdlib ``email`` package (modern ``policy.default``)."""
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)

    metadata: dict[str, object] = {}
    for key in ("subject", "from", "to", "cc", "date"):
        value = message.get(key)
        if value is not None and str(value).strip():
            metadata[key] = " ".join(str(value).split())
    if "subject" in metadata:
        metadata["title"] = metadata["subject"]

    sections: list[Section] = []
    plain = message.get_body(preferencelist=("plain",))
    if plain is not None:
        text = clean_text(repair_mojibake(_content(plain)))
        if text:
            sections.append(Section(text=text))
    if not sections:
        html = message.get_body(preferencelist=("html",))
        if html is not None:
            from .html import html_to_parsed

            sections = html_to_parsed(_content(html)).sections
    return Parsed(sections, metadata)
