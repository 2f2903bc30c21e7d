# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection in check mode (``offline``): what only a call needs is a warning, not an error, and no call is made.
tests/functional/test_check_mode_without_libraries.py runs the module so on a Python without the libraries."""

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import auth
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.connection import Connection
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import AuthError, ValidationError

CLIENT = dict(client_id="client", client_secret="secret", token_url="https://id.example.com/oauth2/token")


def test_a_missing_ca_file_is_an_error_for_a_real_run(tmp_path):
    with pytest.raises(ValidationError) as raised:
        Connection(ca_path=str(tmp_path / "missing.pem"), **CLIENT)
    assert raised.value.option == "ca_path"


def test_a_missing_ca_file_is_a_warning_in_check_mode(tmp_path):
    missing = str(tmp_path / "missing.pem")
    connection = Connection(ca_path=missing, offline=True, **CLIENT)
    assert connection.warnings == [
        "check mode: ca_path: '%s' is not a readable file of PEM CA certificates; check mode needs no CA file, "
        "but a real run fails unless it exists by then" % missing]
    assert connection.principal == "client:client"


def test_check_mode_makes_no_channel():
    connection = Connection(offline=True, **CLIENT)
    with pytest.raises(RuntimeError):
        connection.client
    assert connection.warnings == []


def test_client_credentials_without_requests_oauthlib(monkeypatch):
    monkeypatch.setattr(auth, "HAS_REQUESTS_OAUTHLIB", False)
    with pytest.raises(AuthError):
        Connection(**CLIENT)
    # Check mode requests no token: the same principal, so the same ledger entries, without the library.
    assert Connection(offline=True, **CLIENT).principal == "client:client"
