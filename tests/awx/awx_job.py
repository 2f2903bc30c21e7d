# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What AWX does before a job runs, reproduced for tests: check a custom credential type the way AWX does when it
is imported, render its injectors for a credential, and lay out ansible-runner's private data directory.

The rules follow AWX's own (awx/main/fields.py, awx/main/models/credential.py):

* inputs hold ``fields`` and ``required``; a field has ``id`` and ``label`` and only the keys AWX knows;
* injectors hold ``file``, ``env`` and ``extra_vars``; every template must render with every field set (strict
  undefined), ``tower.filename`` exists only with a ``file`` injector, no env var may start with ``ANSIBLE_``;
* at job start, only the inputs the credential holds (and that are not empty) are in the template namespace, so a
  template of an empty input renders as an empty string; each file injector is written to a new 0600 file under
  ``env/`` and ``tower.filename`` names it; env injectors become the job's environment; extra_vars injectors are
  written to another file under ``env/`` and passed with ``-e @file``.
"""

import json
import os
import re
import stat
import subprocess
import sys
import tempfile

import yaml
from jinja2 import StrictUndefined
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

FIELD_KEYS = {"id", "label", "type", "format", "choices", "help_text", "multiline", "secret", "ask_at_runtime",
              "default"}
NAME = r"^[a-zA-Z_]+[a-zA-Z0-9_]*$"
# Some of the variables AWX sets itself and so refuses in credentials (besides every ANSIBLE_* one).
ENV_BLOCKLIST = {"PATH", "HOME", "PYTHONPATH", "VIRTUAL_ENV", "JOB_ID", "INVENTORY_ID", "INVENTORY_SOURCE_ID",
                 "INVENTORY_UPDATE_ID", "AD_HOC_COMMAND_ID", "REST_API_URL", "REST_API_TOKEN", "MAX_EVENT_RES",
                 "CALLBACK_QUEUE", "CALLBACK_CONNECTION", "CACHE", "JOB_CALLBACK_DEBUG", "PROJECT_REVISION",
                 "SUPERVISOR_CONFIG_PATH", "RUNNER_OMIT_EVENTS", "RUNNER_ONLY_FAILED_EVENTS"}


class _Files:
    """``tower.filename`` of AWX: one name for a single ``template``, attributes for ``template.NAME``."""

    def __init__(self):
        self.filename = None


class _NoFile:
    """``tower.filename`` without a file injector: AWX refuses a template that uses it."""

    def __str__(self):
        raise UndefinedError("tower.filename is used, but there is no file injector")


def load(path):
    with open(path, "r", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def problems(credential_type):
    """What AWX would refuse when the credential type is created; an empty list when it is valid."""
    found = []
    for key in ("name", "kind", "inputs", "injectors"):
        if key not in credential_type:
            found.append("missing %s" % key)
    if credential_type.get("kind") not in ("cloud", "net"):
        found.append("kind must be cloud or net for a custom credential type")
    inputs = credential_type.get("inputs") or {}
    for key in inputs:
        if key not in ("fields", "required"):
            found.append("inputs: %s is not allowed (custom types take fields and required only)" % key)
    ids = []
    for field in inputs.get("fields", []):
        unknown = sorted(set(field) - FIELD_KEYS)
        if unknown:
            found.append("field %s: unknown keys %s" % (field.get("id"), ", ".join(unknown)))
        if "id" not in field or "label" not in field:
            found.append("field %r lacks id or label" % field)
            continue
        if not re.match(NAME, field["id"]) or field["id"] == "tower":
            found.append("field id %s is not allowed" % field["id"])
        if field["id"] in ids:
            found.append("field id %s is not unique" % field["id"])
        ids.append(field["id"])
        if field.get("type", "string") not in ("string", "boolean"):
            found.append("field %s: type must be string or boolean" % field["id"])
    for name in inputs.get("required", []):
        if name not in ids:
            found.append("required names an unknown field %s" % name)
    injectors = credential_type.get("injectors") or {}
    for key in injectors:
        if key not in ("file", "env", "extra_vars"):
            found.append("injectors: %s is not allowed" % key)
    files = list(injectors.get("file", {}))
    if any(not re.match(r"^template(\.[a-zA-Z_]+[a-zA-Z0-9_]*)?$", name) for name in files):
        found.append("file injectors must be named template or template.NAME")
    if "template" in files and len(files) > 1:
        found.append("use template.NAME for each file when there are several")
    for name, value in injectors.get("env", {}).items():
        if not re.match(NAME, name) or name.startswith("ANSIBLE_") or name in ENV_BLOCKLIST:
            found.append("env %s is not allowed" % name)
        if not all(ord(char) < 128 for char in value):
            found.append("env %s: template must be ASCII" % name)
    for name in injectors.get("extra_vars", {}):
        if not re.match(NAME, name):
            found.append("extra_vars %s is not a variable name" % name)
    namespace = dict((field_id, "EXAMPLE") for field_id in ids)
    namespace["tower"] = _Files()
    namespace["tower"].filename = _NoFile()
    if "template" in files:
        namespace["tower"].filename = "EXAMPLE_FILENAME"
    elif files:
        namespace["tower"].filename = _Files()
        for name in files:
            setattr(namespace["tower"].filename, name.split(".", 1)[1], "EXAMPLE_FILENAME")
    environment = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    for kind, injector in injectors.items():
        for key, template in injector.items():
            try:
                environment.from_string(template).render(namespace)
            except (UndefinedError, SecurityError, TemplateSyntaxError) as exc:
                found.append("%s %s: %s" % (kind, key, exc))
    return found


class Injected:
    """What a credential contributes to one job."""

    def __init__(self, env, extra_vars, files, extra_vars_file):
        self.env = env
        self.extra_vars = extra_vars
        self.files = files
        self.extra_vars_file = extra_vars_file


def inject(credential_type, inputs, private_data_dir):
    """Render ``credential_type``'s injectors for a credential holding ``inputs`` into ``private_data_dir``."""
    env_dir = os.path.join(private_data_dir, "env")
    os.makedirs(env_dir, exist_ok=True)
    namespace = dict((key, value) for key, value in inputs.items() if value not in (None, ""))
    namespace["tower"] = _Files()
    environment = ImmutableSandboxedEnvironment()
    files = {}
    for label, template in credential_type["injectors"].get("file", {}).items():
        fd, path = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(fd, "w") as handle:
            handle.write(environment.from_string(template).render(**namespace))
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        files[label] = path
        if "." in label:
            if not isinstance(namespace["tower"].filename, _Files):
                namespace["tower"].filename = _Files()
            setattr(namespace["tower"].filename, label.split(".", 1)[1], path)
        else:
            namespace["tower"].filename = path
    env = dict((name, environment.from_string(template).render(**namespace))
               for name, template in credential_type["injectors"].get("env", {}).items())
    extra_vars = dict((name, environment.from_string(template).render(**namespace))
                      for name, template in credential_type["injectors"].get("extra_vars", {}).items())
    extra_vars_file = None
    if extra_vars:
        fd, extra_vars_file = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(extra_vars, handle, default_flow_style=False)
        os.chmod(extra_vars_file, stat.S_IRUSR)
    return Injected(env, extra_vars, files, extra_vars_file)


def inventory_script(inventory_json, hosts):
    """An ``inventory/hosts`` script as AWX writes one: it prints the inventory (here: only ``hosts``) as JSON."""
    data = json.loads(json.dumps(inventory_json))
    keep = set(hosts)
    hostvars = data.get("_meta", {}).get("hostvars", {})
    for host in list(hostvars):
        if host not in keep:
            del hostvars[host]
    for name, group in data.items():
        if name != "_meta" and isinstance(group, dict) and "hosts" in group:
            group["hosts"] = [host for host in group["hosts"] if host in keep]
    return "#!%s\nimport json\nimport sys\nDATA = %s\nif '--host' in sys.argv:\n    print(json.dumps({}))\n" \
           "else:\n    print(json.dumps(DATA))\n" % (sys.executable, json.dumps(data, sort_keys=True))


def private_data_dir(root, credential_type, inputs, inventory_json, hosts, playbook_text, job_env, extra_vars=None):
    """A private data directory as AWX hands it to ansible-runner; returns (path, Injected)."""
    for sub in ("env", "inventory", "project"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    injected = inject(credential_type, inputs, root)
    env = dict(job_env)
    env.update(injected.env)
    _write_yaml(os.path.join(root, "env", "envvars"), env, 0o600)
    _write_yaml(os.path.join(root, "env", "extravars"), extra_vars or {}, 0o600)
    _write_yaml(os.path.join(root, "env", "settings"), {"suppress_ansible_output": False}, 0o600)
    if injected.extra_vars_file:
        with open(os.path.join(root, "env", "cmdline"), "w", encoding="utf-8") as handle:
            handle.write("-e @%s" % injected.extra_vars_file)
    script = os.path.join(root, "inventory", "hosts")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write(inventory_script(inventory_json, hosts))
    os.chmod(script, 0o700)
    with open(os.path.join(root, "project", "register.yml"), "w", encoding="utf-8") as handle:
        handle.write(playbook_text)
    return root, injected


def _write_yaml(path, data, mode):
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(data, handle, default_flow_style=False)
    os.chmod(path, mode)


def run(private_data, ident, runner, env, timeout=300):
    """``ansible-runner run`` of ``register.yml``; returns (exit status, runner's own output, artifacts dir).

    ``env`` is the environment of runner itself; env/envvars is added to it for the playbook."""
    process = subprocess.run([runner, "run", private_data, "-p", "register.yml", "--ident", ident], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False)
    return (process.returncode, process.stdout.decode("utf-8", "replace"),
            os.path.join(private_data, "artifacts", ident))


def events(artifacts):
    """The job events runner wrote, in order."""
    directory = os.path.join(artifacts, "job_events")
    found = []
    for name in os.listdir(directory):
        with open(os.path.join(directory, name), "r", encoding="utf-8") as handle:
            found.append(json.load(handle))
    return sorted(found, key=lambda event: event.get("counter", 0))


def recap(artifacts):
    """The ``playbook_on_stats`` counters: {'changed': {host: n}, 'failures': {...}, ...}."""
    stats = [event for event in events(artifacts) if event.get("event") == "playbook_on_stats"]
    if not stats:
        raise AssertionError("no playbook_on_stats event in %s" % artifacts)
    return stats[-1]["event_data"]
