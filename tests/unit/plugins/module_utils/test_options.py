# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one table of shared options and what derives from it: the modules' argument spec (validated by Ansible's own
ArgumentSpecValidator, environment fallbacks and no_log included), Connection and the keepalive's config file. The
doc fragments are generated from it (hack/doc_fragments.py, checked by `make docs-check`); the roles and
docs/keepalive.md are held to it by tests/functional/test_option_table.py, the AWX credential type by
tests/awx/test_credential_type.py."""

import inspect
import json
import os

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import auth, client, keepalive, options
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ansible_module import CONNECTION_ARGSPEC, \
    LEDGER_ARGSPEC
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.connection import OPTIONS, Connection
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import ValidationError

ARGSPECS = {options.CONNECTION: CONNECTION_ARGSPEC, options.LEDGER: LEDGER_ARGSPEC}
NEW_LEDGER_OPTIONS = ("ledger_store", "ledger_scope", "ledger_conninfo", "login_host", "login_port", "login_user",
                      "login_password", "login_db", "ssl_mode", "ca_cert", "lock_timeout")


@pytest.fixture(autouse=True)
def _no_wgtwo_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("WGTWO_"):
            monkeypatch.delenv(name)


def _default(option):
    """The option's default as a module sees it (Ansible expands a path's ~)."""
    if option.type == "path" and option.default:
        return os.path.expanduser(option.default)
    return option.default


def _validate(group, parameters):
    result = ArgumentSpecValidator(ARGSPECS[group]).validate(parameters)
    return result.validated_parameters, [str(error) for error in result.errors], result._no_log_values


def test_every_option_has_one_entry_a_group_a_type_and_documentation():
    names = [option.name for option in options.SHARED_OPTIONS]
    assert len(names) == len(set(names))
    assert set(names) == set(CONNECTION_ARGSPEC) | set(LEDGER_ARGSPEC)
    assert not set(CONNECTION_ARGSPEC) & set(LEDGER_ARGSPEC)
    for option in options.SHARED_OPTIONS:
        assert option.group in options.GROUPS, option
        assert option.type in ("str", "path", "int", "float", "bool"), option
        assert option.description and all(line.strip() for line in option.description), option
    assert set(NEW_LEDGER_OPTIONS) <= set(options.names_in(options.LEDGER))


@pytest.mark.parametrize("group", options.GROUPS)
def test_the_argument_spec_is_the_table(group):
    spec = ARGSPECS[group]
    assert list(spec) == list(options.names_in(group))
    for option in options.options_in(group):
        entry = spec[option.name]
        assert entry["type"] == option.type
        assert entry.get("default") == option.default
        assert entry.get("choices", []) == list(option.choices)
        assert entry["no_log"] is option.secret
        assert (entry["fallback"][1] if "fallback" in entry else []) == list(option.env)


@pytest.mark.parametrize("group", options.GROUPS)
def test_ansible_applies_the_defaults_and_hides_the_secrets(group):
    given = dict((option.name, "value-of-%s" % option.name) for option in options.options_in(group)
                 if option.type in ("str", "path") and not option.choices)
    validated, errors, hidden = _validate(group, dict(given))
    assert errors == []
    assert hidden == set("value-of-%s" % name for name in options.SECRETS if name in given)
    validated, errors, hidden = _validate(group, {})
    assert errors == [] and hidden == set()
    for option in options.options_in(group):
        assert validated[option.name] == _default(option)


def test_environment_fallbacks_and_an_empty_variable_counts_as_unset(monkeypatch):
    with_env = [option for option in options.SHARED_OPTIONS if option.env]
    assert set(option.name for option in with_env) >= {"ledger_store", "ledger_scope", "ledger_conninfo"}
    for option in with_env:
        value = option.choices[-1] if option.choices else "from-env-%s" % option.name
        monkeypatch.setenv(option.env[0], value)
        validated, errors, hidden = _validate(option.group, {})
        assert errors == [] and validated[option.name] == value, option
        assert (value in hidden) is option.secret, option
        monkeypatch.setenv(option.env[0], "")
        validated, errors, _hidden = _validate(option.group, {})
        assert errors == [] and validated[option.name] == _default(option), option
        monkeypatch.delenv(option.env[0])


def test_the_choices_are_enforced():
    _validated, errors, _hidden = _validate(options.LEDGER, dict(ledger_store="mysql", ssl_mode="verify"))
    assert len(errors) == 2
    assert "ledger_store" in errors[0] + errors[1] and "sqlite, postgresql" in errors[0] + errors[1]
    validated, errors, _hidden = _validate(options.LEDGER, dict(ledger_store="postgresql", ssl_mode="verify-full",
                                                                login_port="5433", lock_timeout="2.5"))
    assert errors == []
    assert (validated["login_port"], validated["lock_timeout"]) == (5433, 2.5)


def test_the_libraries_defaults_are_the_tables():
    # Connection (and the auth and client behind it) apply these when an option is None or left out.
    parameters = inspect.signature(Connection.__init__).parameters
    assert OPTIONS == options.names_in(options.CONNECTION)
    for option in options.options_in(options.CONNECTION):
        assert parameters[option.name].default == option.default, option
    assert options.OPTION_BY_NAME["api_endpoint"].default == client.DEFAULT_ENDPOINT
    assert options.OPTION_BY_NAME["token_url"].default == auth.DEFAULT_TOKEN_URL
    assert options.OPTION_BY_NAME["token_cache_path"].default == auth.DEFAULT_TOKEN_CACHE


def test_the_keepalive_takes_every_shared_option_with_its_type():
    names = [option.name for option in keepalive.CONFIG_OPTIONS]
    assert len(names) == len(set(names))
    assert names[:len(options.SHARED_OPTIONS)] == [option.name for option in options.SHARED_OPTIONS]
    assert set(keepalive.KEEPALIVE_DEFAULTS) <= set(options.OPTION_BY_NAME)
    settings = keepalive.parse_config({}, "cfg.json")
    assert set(settings.values) == set(names)
    for option in keepalive.CONFIG_OPTIONS:
        expected = keepalive.KEEPALIVE_DEFAULTS.get(option.name, option.default)
        assert settings.values[option.name] == expected, option
    assert settings.lock_timeout == 120.0 and settings.ledger_store == "sqlite" and settings.ledger_scope == "default"


def test_the_keepalive_passes_the_ledger_options_through():
    given = dict(ledger_store="postgresql", ledger_scope="cluster-a", login_port=5433, ssl_mode="verify-full",
                 ledger_conninfo="host=db.example.com dbname=sipbreakout", login_user="sb", login_password="pw",
                 login_host="db.example.com", login_db="sipbreakout", ca_cert="~/db-ca.pem", lock_timeout=5)
    settings = keepalive.parse_config(given, "cfg.json")
    for name, value in given.items():
        assert getattr(settings, name) == (os.path.expanduser(value) if name == "ca_cert" else value), name
    assert isinstance(settings.lock_timeout, float)
    # A null ledger option is its default, as a keepalive setting's is.
    assert keepalive.parse_config(dict(ledger_store=None, lock_timeout=None), "c").values["ledger_store"] == "sqlite"


@pytest.mark.parametrize("data, option, shown", [
    ({"ledger_store": "mysql"}, "ledger_store", 'expected one of sqlite, postgresql, got "mysql"'),
    ({"ssl_mode": "verify"}, "ssl_mode", "expected one of disable, allow, prefer, require, verify-ca, verify-full"),
    ({"login_port": "5432"}, "login_port", 'expected a number, got "5432"'),
    ({"login_port": 5432.5}, "login_port", "expected a whole number"),
    ({"ledger_scope": ""}, "ledger_scope", "expected a non-empty string"),
    ({"login_password": 123456}, "login_password", "got (hidden)"),
    ({"ledger_conninfo": ["password=123456"]}, "ledger_conninfo", "got (hidden)"),
])
def test_the_keepalive_refuses_bad_ledger_options_naming_the_key(data, option, shown):
    with pytest.raises(ValidationError) as caught:
        keepalive.parse_config(data, "cfg.json")
    assert caught.value.option == option
    assert shown in str(caught.value) and "123456" not in str(caught.value)


@pytest.mark.parametrize("secret", options.SECRETS)
def test_a_config_file_holding_any_secret_must_be_private(tmp_path, secret):
    path = tmp_path / "keepalive.json"
    path.write_text(json.dumps({secret: "Do-Not-Show-0417"}))
    os.chmod(str(path), 0o644)
    with pytest.raises(ValidationError) as caught:
        keepalive.load_config(str(path))
    assert "holds %s but is readable by group or others" % secret in str(caught.value)
    assert "Do-Not-Show-0417" not in str(caught.value)
    os.chmod(str(path), 0o600)
    assert keepalive.load_config(str(path)).values[secret] == "Do-Not-Show-0417"
