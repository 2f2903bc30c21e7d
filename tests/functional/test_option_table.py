# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What cannot read plugins/module_utils/options.py (the roles' YAML and Jinja, a Markdown page) is held to its
table here: the same names, types, secrets and defaults. The Python that derives from the table is tested in
tests/unit/plugins/module_utils/test_options.py, the AWX credential type and playbooks/register.yml in
tests/awx/test_credential_type.py."""

import os
import re

import pytest
import yaml

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import keepalive
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.options import CONNECTION, CREDENTIAL_OPTIONS, \
    OPTION_BY_NAME, SECRETS, options_in

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# keepalive_connection holds the connection options but this one, which is a role variable of its own.
KEEPALIVE_OWN_VARIABLE = "token_cache_path"


def _text(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as handle:
        return handle.read()


def _yaml(path):
    return yaml.safe_load(_text(path))


def _keys(template):
    """The keys of the dict literals of a Jinja expression: 'name': ..."""
    return re.findall(r"'([a-z_]+)':", template)


def _keepalive_role_spec():
    return _yaml("roles/keepalive/meta/argument_specs.yml")["argument_specs"]["main"]["options"]


def test_keepalive_connection_is_the_connection_options():
    suboptions = _keepalive_role_spec()["keepalive_connection"]["options"]
    expected = [option for option in options_in(CONNECTION) if option.name != KEEPALIVE_OWN_VARIABLE]
    assert sorted(suboptions) == sorted(option.name for option in expected)
    for option in expected:
        spec = suboptions[option.name]
        # A path is a str to the role: it is a path on the host, which the controller must not expand.
        assert spec["type"] == ("str" if option.type == "path" else option.type), option
        assert spec.get("no_log", False) is option.secret, option
        assert "default" not in spec, option  # the program's defaults apply


def test_the_keepalive_config_template_writes_only_keys_the_program_takes():
    template = _text("roles/keepalive/templates/keepalive.json.j2")
    written = _keys(template)
    taken = set(option.name for option in keepalive.CONFIG_OPTIONS)
    assert written and set(written) <= taken
    assert KEEPALIVE_OWN_VARIABLE in written
    assert "keepalive_connection | dict2items" in template


def _as_config(option, value):
    """A role variable's default as the config file gets it: an empty metrics or ledger path means none."""
    if option.name in ("metrics_path", "ledger_path") and value == "":
        return None
    return value


def test_the_keepalive_roles_defaults_are_the_programs():
    defaults = _yaml("roles/keepalive/defaults/main.yml")
    spec = _keepalive_role_spec()
    checked = []
    for option in keepalive.CONFIG_OPTIONS:
        variable = "keepalive_%s" % option.name
        if variable not in defaults:
            continue
        expected = keepalive.keepalive_default(option)
        for value in (defaults[variable], spec[variable]["default"]):
            if option.type == "float":
                # The role writes refresh_fraction as 0.3333 for the program's 1/3.
                assert _as_config(option, value) == pytest.approx(expected, rel=1e-3), variable
            else:
                assert _as_config(option, value) == expected, variable
        checked.append(option.name)
    assert {"token_cache_path", "ledger_path", "health_path", "concurrency"} <= set(checked)


def _pbx_task(name_start):
    tasks = _yaml("roles/pbx/tasks/registrations.yml")
    return next(task for task in tasks if task["name"].startswith(name_start))


def test_the_pbx_role_passes_each_credential_option_from_its_variable():
    arguments = _pbx_task("Register at the operator")["wgtwo.sipbreakout.registration"]
    passed = set(arguments) & set(OPTION_BY_NAME)
    assert passed == set(CREDENTIAL_OPTIONS) | {"ledger_path", "token_cache_path"}
    for name in CREDENTIAL_OPTIONS:
        assert "sipbreakout_%s " % name in arguments[name], name
    keepalive_vars = _pbx_task("Keep the registrations alive")["vars"]
    assert sorted(_keys(keepalive_vars["keepalive_connection"])) == sorted(CREDENTIAL_OPTIONS)
    for name in CREDENTIAL_OPTIONS:
        assert "sipbreakout_%s " % name in keepalive_vars["keepalive_connection"], name


def test_the_pbx_roles_credential_variables_hide_the_secrets():
    spec = _yaml("roles/pbx/meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    for name in CREDENTIAL_OPTIONS:
        assert spec["sipbreakout_%s" % name].get("no_log", False) is OPTION_BY_NAME[name].secret, name


def _config_table():
    """The rows of docs/keepalive.md's config file table: (keys, default, meaning)."""
    page = _text("docs/keepalive.md")
    section = page.split("## Config file", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    table = []
    for row in rows:
        keys, default, meaning = [cell.strip() for cell in row.strip("|").split(" | ", 2)]
        table.append((re.findall(r"`([a-z_]+)`", keys), default, meaning))
    return section, table


def test_docs_keepalive_lists_every_key_with_its_default():
    section, table = _config_table()
    listed = [key for keys, _default, _meaning in table for key in keys]
    assert sorted(listed) == sorted(option.name for option in keepalive.CONFIG_OPTIONS)
    for keys, default, _meaning in table:
        for key in keys:
            option = next(option for option in keepalive.CONFIG_OPTIONS if option.name == key)
            if default == "as the modules":
                assert option.name in OPTION_BY_NAME and option.name not in keepalive.KEEPALIVE_DEFAULTS, key
                continue
            expected = keepalive.keepalive_default(option)
            if expected is None:
                assert default == "none", key
            elif isinstance(expected, bool):
                assert default == "`%s`" % str(expected).lower(), key
            elif isinstance(expected, float):
                assert float(default.strip("`")) == pytest.approx(expected, rel=1e-3), key
            else:
                assert default == "`%s`" % expected, key
    secrets_sentence = section.split("A file that holds a secret (", 1)[1].split(")", 1)[0]
    assert re.findall(r"`([a-z_]+)`", secrets_sentence) == list(SECRETS)
