"""Errors that lipbench reports to users as one clear message (no traceback)."""

from __future__ import annotations


class LipbenchError(Exception):
    """Base class: the message says what is wrong, which thing, and how to fix it."""


class DataError(LipbenchError):
    """A data root, dataset, image or data file is missing or unreadable."""


class KernelError(LipbenchError):
    """A blur kernel is unknown, unreadable or invalid."""


class ChecksumError(DataError):
    """A file's SHA-256 digest does not match the one shipped with lipbench."""


class FetchError(DataError):
    """A download or an archive extraction failed."""
