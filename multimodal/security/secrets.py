"""PACS credentials from places other than the command line, and their redaction from logs.

Where a secret comes from, first found wins: the argument given (the command line: visible in
``ps`` and shell history, so the CLI warns), the environment (``MMDX_PACS_USER``,
``MMDX_PACS_PASSWORD``, ``MMDX_PACS_TOKEN``), a secrets file (``KEY=VALUE`` lines with the keys
``user``, ``password``, ``token``; refused unless its mode is 0600 or stricter), then the netrc file
(``NETRC`` or ``~/.netrc``) entry of the server's host, read with the standard ``netrc`` module.

Every secret in use is registered with :func:`redact`, which installs a log-record factory that
replaces it with ``***`` in every log message of the process, whoever logs it. Basic auth or a
token over plain ``http://`` is refused (:func:`check_transport`) unless allowed explicitly
(``allow_http_auth`` / ``--allow-http-auth`` / ``MMDX_ALLOW_HTTP_AUTH=1``).
"""

from __future__ import annotations

import logging
import netrc
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from preprocessing.errors import ConfigError

USER_ENV, PASSWORD_ENV, TOKEN_ENV = "MMDX_PACS_USER", "MMDX_PACS_PASSWORD", "MMDX_PACS_TOKEN"
ALLOW_HTTP_AUTH_ENV = "MMDX_ALLOW_HTTP_AUTH"
MASK = "***"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credentials:
    """Basic-auth user/password or a bearer token; ``repr`` never shows the secrets."""

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = "none"

    @property
    def any(self) -> bool:
        return bool(self.user or self.password or self.token)


def _secrets_file(path: str | Path) -> dict[str, str]:
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as err:
        raise ConfigError("secrets_file", f"{path}: cannot read it ({err.strerror})") from err
    if mode & 0o077:
        raise ConfigError("secrets_file", f"{path}: permissions are {oct(mode & 0o777)}; run chmod 600 on it")
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or key.strip() not in ("user", "password", "token"):
            raise ConfigError("secrets_file", f"{path}:{number}: expected user=..., password=... or token=...")
        values[key.strip()] = value.strip()
    return values


def _netrc(url: str) -> dict[str, str]:
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    host = urlsplit(url).hostname
    if not host or not path.is_file():
        return {}
    try:
        found = netrc.netrc(str(path)).authenticators(host)
    except (netrc.NetrcParseError, OSError) as err:
        raise ConfigError("netrc", f"{path}: {err}") from err
    return {"user": found[0], "password": found[2]} if found else {}


def resolve_credentials(url: str, user: str | None = None, password: str | None = None, token: str | None = None,
                        secrets_file: str | Path | None = None) -> Credentials:
    """The credentials for ``url`` (see the module docstring for the order); registers them for redaction."""
    candidates = [("argument", {"user": user, "password": password, "token": token}),
                  ("environment", {"user": os.environ.get(USER_ENV), "password": os.environ.get(PASSWORD_ENV),
                                   "token": os.environ.get(TOKEN_ENV)})]
    if secrets_file:
        candidates.append((f"secrets file {secrets_file}", _secrets_file(secrets_file)))
    candidates.append(("netrc", _netrc(url)))
    chosen = Credentials()
    for source, values in candidates:
        if values.get("password") or values.get("token"):
            chosen = Credentials(values.get("user") or user or os.environ.get(USER_ENV), values.get("password"),
                                 values.get("token"), source)
            break
    else:
        if user:
            chosen = Credentials(user, None, None, "argument")
    if chosen.password and chosen.token:
        raise ConfigError("token", f"the {chosen.source} gives both a password and a token; give one")
    redact(chosen.password, chosen.token)
    return chosen


def check_transport(url: str, credentials: Credentials, allow_http_auth: bool = False) -> None:
    """Refuse to send credentials over plain HTTP unless allowed explicitly."""
    allowed = allow_http_auth or os.environ.get(ALLOW_HTTP_AUTH_ENV) == "1"
    if credentials.any and urlsplit(url).scheme == "http" and not allowed:
        raise ConfigError("url", f"{url}: refusing to send credentials over plain http:// (anyone on the path "
                                 f"can read them); use https://, or pass --allow-http-auth / set "
                                 f"{ALLOW_HTTP_AUTH_ENV}=1 for a trusted network")


def warn_command_line_secret(option: str) -> None:
    """The warning for a secret typed on the command line."""
    log.warning("%s on the command line is visible in `ps` and shell history; prefer %s / %s, a 0600 "
                "--secrets-file or ~/.netrc", option, PASSWORD_ENV, TOKEN_ENV)


_secrets: set[str] = set()
_lock = threading.Lock()
_base_factory = logging.getLogRecordFactory()


def _redacting_factory(*args, **kwargs) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    message = record.getMessage()
    if any(s in message for s in _secrets):
        for secret in sorted(_secrets, key=len, reverse=True):
            message = message.replace(secret, MASK)
        record.msg, record.args = message, None
    return record


def redact(*values: str | None) -> None:
    """Mask these strings in every log record of this process from now on."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= 3)
        if _secrets and logging.getLogRecordFactory() is not _redacting_factory:
            logging.setLogRecordFactory(_redacting_factory)
