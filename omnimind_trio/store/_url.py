"""Database URLs, without importing a driver: which backend a URL names, and a URL fit to
be shown (its password masked)."""

from __future__ import annotations

import re


def is_postgres(location: str) -> bool:
    """Whether ``location`` is a PostgreSQL URL (libpq's: ``postgresql://`` or
    ``postgres://``)."""
    return location.startswith(("postgresql://", "postgres://"))


def masked(url: str) -> str:
    """``url`` without its password (``postgresql://user:***@host/db``, and a
    ``password=`` parameter ``***``): what messages and logs show."""
    url = re.sub(r"^([A-Za-z][\w+.-]*://[^:/@?#]*):[^@?#]*@", r"\1:***@", url)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url)
