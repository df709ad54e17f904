"""Domain errors: each message names the bad value and, where there is a choice, the valid ones.

The CLI and the API turn ``RaglineError`` into a one-line message and a
non-zero exit (or a 4xx), never a traceback.
"""

from __future__ import annotations


class RaglineError(ValueError):
    """Base for errors a user can act on."""


class ConfigError(RaglineError):
    """A setting has a bad value."""


class UnreadableFileError(RaglineError):
    """A source file cannot be parsed; the sync skips it and reports the reason."""

    def __init__(self, reason: str, notice: str | None = None) -> None:
        super().__init__(reason)
        self.notice = notice
        """What the sync report should say once, however many files meet it (how to enable OCR, say)."""


class EmptyFolderError(RaglineError):
    """A sync found no file in a folder whose documents the index holds, and left them."""


class ModelMismatchError(RaglineError):
    """The index was built with another embedding model than the one configured."""


class ModelUnavailableError(RaglineError):
    """A model cannot be loaded (missing locally and not downloadable)."""


class IndexUnavailableError(RaglineError):
    """The index folder is missing, locked by another process, or damaged."""


class LLMError(RaglineError):
    """The endpoint is not configured, unreachable, or answered with an error."""


def one_line(reason: BaseException | str, limit: int = 300) -> str:
    """A message (or an exception's) on one line and at most ``limit`` characters, for errors and logs."""
    text = " ".join(str(reason).split())
    if not text:
        return type(reason).__name__ if isinstance(reason, BaseException) else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."
