"""PACS credentials: where they come from, where they may go, and that logs never show them."""

from __future__ import annotations

import logging
import os

import pytest

from multimodal.security.secrets import Credentials, check_transport, resolve_credentials
from preprocessing.errors import ConfigError

URL = "https://pacs.example.org/dicom-web"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in ("MMDX_PACS_USER", "MMDX_PACS_PASSWORD", "MMDX_PACS_TOKEN", "MMDX_ALLOW_HTTP_AUTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def test_environment_then_secrets_file_then_netrc(monkeypatch, tmp_path):
    secrets = tmp_path / "secrets"
    secrets.write_text("# PACS account\nuser=ai-node\npassword=from-file\n")
    os.chmod(secrets, 0o600)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine pacs.example.org login netrc-user password from-netrc\n")
    os.chmod(netrc, 0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert resolve_credentials(URL).password == "from-netrc"
    assert resolve_credentials(URL, secrets_file=secrets) == Credentials("ai-node", "from-file", None,
                                                                         f"secrets file {secrets}")
    monkeypatch.setenv("MMDX_PACS_TOKEN", "from-env-token")
    assert resolve_credentials(URL, secrets_file=secrets).token == "from-env-token"
    assert resolve_credentials(URL, user="u", password="typed").password == "typed"
    assert "typed" not in repr(resolve_credentials(URL, user="u", password="typed"))


def test_readable_secrets_file_is_refused(tmp_path):
    secrets = tmp_path / "secrets"
    secrets.write_text("password=x\n")
    os.chmod(secrets, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        resolve_credentials(URL, secrets_file=secrets)


def test_credentials_over_plain_http_need_an_explicit_yes(monkeypatch):
    creds = Credentials("u", "p")
    with pytest.raises(ConfigError, match="plain http"):
        check_transport("http://pacs/dicom-web", creds)
    check_transport("http://pacs/dicom-web", creds, allow_http_auth=True)
    check_transport("http://pacs/dicom-web", Credentials())
    monkeypatch.setenv("MMDX_ALLOW_HTTP_AUTH", "1")
    check_transport("http://pacs/dicom-web", creds)


def test_secrets_in_use_are_masked_in_every_log(caplog):
    resolve_credentials(URL, user="u", password="hunter2-secret")
    caplog.set_level(logging.INFO)
    logging.getLogger("anything.else").info("connecting with %s to %s", "hunter2-secret", URL)
    assert "hunter2-secret" not in caplog.text and "***" in caplog.text
