"""Process-wide security settings given once on the ``mmdx`` command line (or in the environment).

``--key-file`` / ``MMDX_KEY_FILE`` turns encryption at rest on, ``--audit-log`` / ``MMDX_AUDIT_LOG``
the audit trail; both are passed to the library (and to decode worker processes) through the
environment, so every command honours them the same way. ``--umask`` / ``MMDX_UMASK`` (default
077) makes every file and folder mmdx creates readable by its owner only.
"""

from __future__ import annotations

import os

from multimodal.security.audit import AUDIT_LOG_ENV
from preprocessing.crypto import KEY_FILE_ENV, Keyring
from preprocessing.errors import ConfigError

UMASK_ENV = "MMDX_UMASK"
DEFAULT_UMASK = "077"


def apply(key_file: str | None = None, audit_log: str | None = None, umask: str | None = None) -> None:
    """Set the umask and export the key file / audit log for this process and its children.

    A key file is loaded once here so that a missing or unsafe one fails before any work starts."""
    text = umask or os.environ.get(UMASK_ENV) or DEFAULT_UMASK
    try:
        mask = int(text, 8)
    except ValueError:
        raise ConfigError("umask", f"expected an octal mask such as 077, got {text!r}") from None
    if not 0 <= mask <= 0o777:
        raise ConfigError("umask", f"expected an octal mask between 000 and 777, got {text!r}")
    os.umask(mask)
    if key_file:
        os.environ[KEY_FILE_ENV] = str(os.path.abspath(key_file))
    if audit_log:
        os.environ[AUDIT_LOG_ENV] = str(os.path.abspath(audit_log))
    if os.environ.get(KEY_FILE_ENV):
        Keyring.from_env()
