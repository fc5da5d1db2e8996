"""Masking secrets in messages: connection strings and webhook URLs must never reach a log, an
event, a tick error or the UI, whatever error path they travel."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
# scheme://user:PASSWORD@host  and  password=PASSWORD (libpq key=value strings, quoted or not)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)
_KEY_VALUE_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every given secret, and any password in a URL or key=value string, masked."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(rf"\g<head>{MASK}@", text)
    return _KEY_VALUE_PASSWORD.sub(rf"\g<head>{MASK}", text)
