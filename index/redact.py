"""Keep secrets out of anything a person or a log file may read.

Settings hold `SecretStr` tokens, but a secret can also hide inside an ordinary string: a
password in `LLM_BASE_URL=http://user:pass@host/v1`, an `?api_key=` in a URL, or a token
echoed back in an exception's message. Logs, error lines and settings reprs pass through
`redact_text`; the entry points register the process's secret values once with
`register_secret`, so even a library's own log line cannot print them.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"

# scheme://userinfo@ : userinfo may hold raw '@' (greedy up to the host's last '@').
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s?#]*)@")
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&](?:api[_-]?key|key|token|access[_-]?token|password|passwd|secret|sig)=)"
    r"(?P<value>[^&\s#\"']+)",
    re.IGNORECASE,
)
_MIN_SECRET_LEN = 4  # shorter "secrets" would blank out ordinary words

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask `value` wherever it appears in text passed to `redact_text` from now on."""
    if value and len(value.strip()) >= _MIN_SECRET_LEN:
        with _secrets_lock:
            _secrets.add(value.strip())


def redact_url(url: str) -> str:
    """The URL with its user name, password and secret query parameters masked."""
    url = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", url)
    return _SECRET_PARAM.sub(lambda m: f"{m['key']}{MASK}", url)


def redact_text(text: str) -> str:
    """`text` with credentials in URLs and every registered secret masked."""
    text = redact_url(text)
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # longest first: no partial leaks
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFormatter(logging.Formatter):
    """Masks secrets in the whole formatted record, traceback and exception text included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))
