"""Follow-up questions: what to search for when a question leans on the chat before it.

"And how long does that take?" says nothing a retriever can use; the chat does. With an LLM endpoint
the question is rewritten into one that stands alone (the model sees the last turns only, so a long chat
costs no more than a short one). Without one, the previous user question is searched together with this
one: crude, but it keeps the topic ("descale the Aurora 2" + "how long does that take"), and a question
that starts a new topic still brings its own words.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.config import LLMConfig
from pipeline.types import Turn

TURNS = 6  # the last turns the rewrite reads
TURN_CHARS = 1000  # of each, the first characters (an assistant's long answer adds little to a rewrite)
REWRITE = """Rewrite the last question of this chat as one standalone search query that can be understood \
without the chat: resolve pronouns and references ("that", "it", "the second one") to what they mean. \
Keep names, codes and numbers exactly. Answer with the query alone, no quotes, no explanation.

Chat:
{chat}

Last question: {question}

Standalone query:"""


def _recent(history: Sequence[Turn]) -> list[Turn]:
    return [t for t in history if t.content.strip()][-TURNS:]


def rewrite_prompt(question: str, history: Sequence[Turn]) -> str:
    chat = "\n".join(f"{t.role}: {t.content.strip()[:TURN_CHARS]}" for t in _recent(history))
    return REWRITE.format(chat=chat, question=question.strip())


def joined(question: str, history: Sequence[Turn]) -> str:
    """The fallback without an LLM: the previous user question, then this one."""
    asked = [t.content.strip() for t in history if t.role == "user" and t.content.strip()]
    return f"{asked[-1]} {question.strip()}" if asked else question


def clean(rewritten: str, question: str, max_chars: int) -> str:
    """The model's query on one line, without quotes or a "Query:" label; the question itself when the model
    sent nothing usable."""
    text = " ".join(rewritten.split()).strip().strip("\"'`“”")
    if text.lower().startswith(("standalone query:", "query:")):
        text = text.split(":", 1)[1].strip()
    return text[:max_chars] if text else question


def standalone(question: str, history: Sequence[Turn], llm: LLMConfig, max_chars: int = 2000) -> str:
    """What to search for ``question`` after ``history``: rewritten by the LLM when one is configured."""
    if not _recent(history):
        return question
    if not llm.configured:
        return joined(question, history)
    from pipeline.stages.llm import chat

    reply = chat([{"role": "user", "content": rewrite_prompt(question, history)}], llm, max_tokens=100)
    return clean(reply, question, max_chars)
