# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""extensions/awx/credential_type.yml: AWX accepts it, it injects exactly what the modules and playbooks read, and
the modules take the empty strings AWX renders for inputs left empty as unset."""

import copy
import json
import os
import re
import stat
import subprocess

import pytest
import yaml

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.options import CREDENTIAL_OPTIONS, OPTION_BY_NAME, \
    SECRETS

import awx_job
from conftest import CLIENT_ID, CLIENT_SECRET, clean_env, pem, tool

# The module options the credential type carries (options.py marks them; token_cache_path, timeout and retries are
# not credentials), and the secret ones.
CARRIED = CREDENTIAL_OPTIONS
SECRET_INPUTS = set(CARRIED) & set(SECRETS)


def test_awx_accepts_it(credential_type):
    assert awx_job.problems(credential_type) == []
    assert credential_type["kind"] == "cloud"
    fields = dict((field["id"], field) for field in credential_type["inputs"]["fields"])
    assert set(fields) == {"client_id", "client_secret", "access_token", "refresh_token", "api_endpoint", "token_url",
                           "ca_certificate"}
    assert set(name for name, field in fields.items() if field.get("secret")) == SECRET_INPUTS
    assert fields["ca_certificate"].get("multiline") is True
    assert all(field.get("help_text") for field in fields.values())


@pytest.mark.parametrize("change, expected", [
    (lambda ct: ct["injectors"]["env"].update(ANSIBLE_CONFIG="{{ client_id }}"), "env ANSIBLE_CONFIG"),
    (lambda ct: ct["injectors"]["env"].update(WGTWO_X="{{ no_such_field }}"), "no_such_field"),
    (lambda ct: ct["inputs"]["fields"][0].update(placeholder="x"), "unknown keys placeholder"),
    (lambda ct: ct["inputs"].update(dependencies={}), "dependencies is not allowed"),
    (lambda ct: ct["injectors"].pop("file"), "tower"),
])
def test_the_check_finds_what_awx_refuses(credential_type, change, expected):
    broken = copy.deepcopy(credential_type)
    change(broken)
    assert any(expected in problem for problem in awx_job.problems(broken)), awx_job.problems(broken)


def test_env_injectors_are_the_module_fallbacks(credential_type):
    expected = set(OPTION_BY_NAME[name].env[0] for name in CARRIED)
    assert set(credential_type["injectors"]["env"]) == expected
    # Each variable carries the input of its own option (the CA: the file AWX writes from ca_certificate).
    env = credential_type["injectors"]["env"]
    for name in CARRIED:
        if name != "ca_path":
            assert env[OPTION_BY_NAME[name].env[0]] == "{{ %s }}" % name, name
    assert "tower.filename" in env["WGTWO_CA_PATH"]


def test_secret_env_vars_are_masked_in_the_job_environment_awx_shows(credential_type):
    # AWX shows a job's environment with the values of variables named like this replaced by asterisks.
    hidden = re.compile(r"API|TOKEN|KEY|SECRET|PASS", re.I)
    for name, template in credential_type["injectors"]["env"].items():
        if any(field in template for field in SECRET_INPUTS):
            assert hidden.search(name), name


def test_extra_vars_are_what_the_playbooks_pass(credential_type, installed):
    extra_vars = credential_type["injectors"]["extra_vars"]
    assert set(extra_vars) == set("sipbreakout_%s" % name for name in CARRIED)
    assert extra_vars["sipbreakout_ca_path"] == credential_type["injectors"]["env"]["WGTWO_CA_PATH"]
    root = installed / "ansible_collections" / "wgtwo" / "sipbreakout"
    with open(str(root / "playbooks" / "register.yml"), "r", encoding="utf-8") as handle:
        play = yaml.safe_load(handle)[0]
    passed = play["module_defaults"]["group/wgtwo.sipbreakout.sipbreakout"]
    for option, template in passed.items():
        variables = re.findall(r"\b(sipbreakout_[a-z_]+)\b", template)
        assert variables == ["sipbreakout_%s" % option]
        assert variables[0] in extra_vars


def test_inputs_left_empty_render_as_empty_strings(credential_type, tmp_path):
    injected = awx_job.inject(credential_type, {"client_id": "c", "client_secret": "s"}, str(tmp_path))
    assert injected.env["WGTWO_CLIENT_ID"] == "c"
    for name in ("WGTWO_ACCESS_TOKEN", "WGTWO_REFRESH_TOKEN", "WGTWO_API_ENDPOINT", "WGTWO_TOKEN_URL",
                 "WGTWO_CA_PATH"):
        assert injected.env[name] == ""
    assert injected.extra_vars["sipbreakout_ca_path"] == ""
    # AWX writes the file injector even when its input is empty; nothing may point at that empty file.
    assert os.path.getsize(injected.files["template"]) == 0


def test_the_ca_becomes_a_private_file(credential_type, tmp_path):
    ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    injected = awx_job.inject(credential_type, {"ca_certificate": ca}, str(tmp_path))
    path = injected.env["WGTWO_CA_PATH"]
    assert path == injected.extra_vars["sipbreakout_ca_path"] == injected.files["template"]
    assert path.startswith(str(tmp_path / "env"))
    with open(path, "r", encoding="utf-8") as handle:
        assert handle.read() == ca
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


# A task that runs in the job's execution environment and relies on the environment alone.
FROM_ENV_ONLY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Everything from the WGTWO_* variables of the credential
      wgtwo.sipbreakout.registration:
        phone_number: "{{ number | default(omit) }}"
        sip_uri: sips:awx.example.com:5061
        route_type: loop
        ledger_path: "{{ work }}/ledger.json"
        token_cache_path: "{{ work }}/tokens.json"
      register: result
    - name: Show it
      ansible.builtin.debug:
        msg: "RESULT {{ result | to_json }}"
"""


def _run_from_env(tmp_path, installed, credential_type, inputs, number="+4799997000", check=False, job="job",
                  succeed=True):
    work = tmp_path / job
    work.mkdir()
    injected = awx_job.inject(credential_type, inputs, str(work))
    (work / "play.yml").write_text(FROM_ENV_ONLY)
    args = [tool("ansible-playbook"), str(work / "play.yml"), "-e", "work=%s" % work]
    if number:
        args += ["-e", "number=%s" % number]
    if check:
        args.append("--check")
    env = clean_env(HOME=str(work / "home"), ANSIBLE_COLLECTIONS_PATH=str(installed),
                    ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_NOCOLOR="1", **injected.env)
    run = subprocess.run(args, env=env, cwd=str(work), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=120, check=False)
    output = run.stdout.decode("utf-8", "replace")
    if not succeed:
        assert run.returncode != 0, output[-2500:]
        return None, output
    assert run.returncode == 0, output[-2500:]
    match = re.search(r'"msg": "RESULT (.*)"\n', output)
    assert match, output[-2500:]
    return json.loads(json.loads('"%s"' % match.group(1))), output


def test_client_credentials_with_empty_token_inputs(tmp_path, installed, credential_type, emulator):
    inputs = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "access_token": "", "refresh_token": "",
              "api_endpoint": emulator.grpc_endpoint, "token_url": emulator.token_url,
              "ca_certificate": pem(emulator.ca_path)}
    result, _output = _run_from_env(tmp_path, installed, credential_type, inputs)
    assert result["changed"] is True
    held = emulator.registrations()
    assert [(r["phone_number"], r["auth_kind"], r["client_id"]) for r in held] == \
        [("+4799997000", "client_credentials", CLIENT_ID)]


def test_user_access_token_with_empty_client_inputs(tmp_path, installed, credential_type, emulator):
    user = emulator.user_token("+4799997001")
    inputs = {"access_token": user["access_token"], "api_endpoint": emulator.grpc_endpoint,
              "ca_certificate": pem(emulator.ca_path)}
    _run_from_env(tmp_path, installed, credential_type, inputs, number=None)
    held = emulator.registrations()
    assert [(r["phone_number"], r["auth_kind"]) for r in held] == [("+4799997001", "user")]


def test_refresh_token_with_empty_access_token(tmp_path, installed, credential_type, emulator):
    user = emulator.user_token("+4799997002", scope="call.routing:write offline_access", client_id=CLIENT_ID)
    inputs = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": user["refresh_token"],
              "api_endpoint": emulator.grpc_endpoint, "token_url": emulator.token_url,
              "ca_certificate": pem(emulator.ca_path)}
    _run_from_env(tmp_path, installed, credential_type, inputs, number=None)
    held = emulator.registrations()
    assert [(r["phone_number"], r["auth_kind"]) for r in held] == [("+4799997002", "user")]


def test_a_refresh_token_in_a_credential_serves_one_job(tmp_path, installed, credential_type, emulator):
    # The operator rotates refresh tokens on every use; a job's container keeps the new one only until it ends, so
    # the next job (a fresh container) presents the spent one (docs/awx.md says to use client credentials).
    user = emulator.user_token("+4799997003", scope="call.routing:write offline_access", client_id=CLIENT_ID)
    inputs = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": user["refresh_token"],
              "api_endpoint": emulator.grpc_endpoint, "token_url": emulator.token_url,
              "ca_certificate": pem(emulator.ca_path)}
    _run_from_env(tmp_path, installed, credential_type, inputs, number=None, job="first")
    _result, output = _run_from_env(tmp_path, installed, credential_type, inputs, number=None, job="second",
                                    succeed=False)
    assert "invalid_grant" in output
    assert user["refresh_token"] not in output


def test_no_credentials_for_a_sandbox(tmp_path, installed, credential_type, emulator):
    emulator.config(sandbox=True)
    inputs = {"api_endpoint": emulator.grpc_endpoint, "ca_certificate": pem(emulator.ca_path)}
    _run_from_env(tmp_path, installed, credential_type, inputs)
    held = emulator.registrations()
    assert [(r["phone_number"], r["auth_kind"]) for r in held] == [("+4799997000", "none")]


def test_empty_endpoint_token_url_and_ca_mean_the_defaults(tmp_path, installed, credential_type):
    # Check mode calls nothing, but the options are validated: an empty ca_path taken as a path, an empty
    # endpoint or token URL taken as given would fail here.
    result, _output = _run_from_env(tmp_path, installed, credential_type,
                                    {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, check=True)
    assert result["changed"] is True
    assert result["time_to_live"] is None


# A stand-in for awx.awx.credential_type with the real module's options: it records what it was given.
FAKE_CREDENTIAL_TYPE_MODULE = '''#!/usr/bin/python
import json
import os

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(
        name=dict(required=True), new_name=dict(), description=dict(),
        kind=dict(choices=["ssh", "vault", "net", "scm", "cloud", "insights", "kubernetes", "galaxy", "registry",
                           "token", "cryptography", "external"]),
        inputs=dict(type="dict"), injectors=dict(type="dict"),
        state=dict(choices=["present", "absent", "exists"], default="present"),
        controller_host=dict(), controller_username=dict(), controller_password=dict(no_log=True),
        controller_oauthtoken=dict(no_log=True), controller_config_file=dict(type="path"),
        validate_certs=dict(type="bool"), request_timeout=dict(type="float")))
    with open(os.environ["FAKE_AWX_RECORD"], "w") as handle:
        json.dump(dict((k, v) for k, v in module.params.items() if k != "controller_password"), handle)
    module.exit_json(changed=True)


main()
'''


def _docs_play(installed):
    page = (installed / "ansible_collections" / "wgtwo" / "sipbreakout" / "docs" / "awx.md").read_text()
    section = page.split("### With the `awx.awx.credential_type` module", 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


def test_the_documented_import_play_hands_awx_the_file_unchanged(tmp_path, installed, credential_type):
    fake = tmp_path / "fake" / "ansible_collections" / "awx" / "awx"
    (fake / "plugins" / "modules").mkdir(parents=True)
    (fake / "plugins" / "modules" / "credential_type.py").write_text(FAKE_CREDENTIAL_TYPE_MODULE)
    (fake / "MANIFEST.json").write_text(json.dumps({"collection_info": {"namespace": "awx", "name": "awx",
                                                                        "version": "24.6.1"}}))
    (tmp_path / "import.yml").write_text(_docs_play(installed))
    record = tmp_path / "record.json"
    source = installed / "ansible_collections" / "wgtwo" / "sipbreakout" / "extensions" / "awx" / "credential_type.yml"
    run = subprocess.run([tool("ansible-playbook"), str(tmp_path / "import.yml"),
                          "-e", "credential_type_file=%s" % source, "-e", "vault_awx_admin_password=x"],
                         env=clean_env(ANSIBLE_COLLECTIONS_PATH="%s:%s" % (tmp_path / "fake", installed),
                                       FAKE_AWX_RECORD=str(record), ANSIBLE_NOCOLOR="1", HOME=str(tmp_path)),
                         cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    assert run.returncode == 0, run.stdout.decode()[-2500:]
    given = json.loads(record.read_text())
    for key in ("name", "description", "kind", "inputs", "injectors"):
        assert given[key] == credential_type[key], key
    assert given["injectors"]["env"]["WGTWO_CLIENT_SECRET"] == "{{ client_secret }}"
    assert given["state"] == "present"
