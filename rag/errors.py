"""Errors a user can act on. The CLI and UI catch only PaperchatError and show its message."""

from __future__ import annotations


class PaperchatError(Exception):
    """Base class: the message says what is wrong and what to do about it."""


class InputError(PaperchatError):
    """A question or option the user gave cannot be used as it is."""


class CorpusError(PaperchatError):
    """A corpus file cannot be read or yields no papers."""


class IndexMissingError(PaperchatError):
    """No index exists yet at the configured location."""


class IndexBusyError(PaperchatError):
    """Another process is writing to the same local index."""


class StorageError(PaperchatError):
    """The database location cannot be used (not writable, server unreachable, ...)."""


class EmbeddingError(PaperchatError):
    """The embedding model stopped working (a worker process died, ...)."""


class LLMError(PaperchatError):
    """The configured LLM endpoint failed in a way retries will not fix."""


class EvalSetError(PaperchatError):
    """An evaluation set file is missing or malformed."""
