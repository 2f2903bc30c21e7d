# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback of the pbx scenario: what each task did on each host, for comparing a check run with the
real run that follows it.

Enabled with ANSIBLE_CALLBACKS_ENABLED=task_record and ANSIBLE_CALLBACK_PLUGINS pointing here; writes a JSON list
to the file $SIPBREAKOUT_TASK_RECORD when the playbook ends, one entry per task result, in order:
``host``, ``task`` (role-qualified name, numbered ``#2``, ``#3``... when a name comes again on the same host),
``action``, ``status`` (ok, changed, skipped, failed), ``would_run`` (a task that reached its module but was
skipped because the module cannot run or check in check mode: a command, unarchive of a tarball), and for the
registration module its ``results`` and ``summary``.
"""

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: task_record
type: aggregate
short_description: Record each task's status per host to a JSON file (molecule scenario pbx only)
description:
  - Writes what each task did on each host to the file named by E(SIPBREAKOUT_TASK_RECORD).
requirements:
  - enable it with E(ANSIBLE_CALLBACKS_ENABLED)
"""

# What modules answer when check mode keeps them from doing or checking anything: ansible.builtin.command and shell
# ("Command would have run if not in check mode"), unarchive of a tarball ("... does not support check mode when
# using gtar"). A `when:` that is false gives a skip_reason instead.
_CANNOT_CHECK = ("would have run if not in check mode", "does not support check mode")
_REGISTRATION = "wgtwo.sipbreakout.registration"


def _part(result, name):
    """ansible-core 2.19 hands callbacks public attributes; earlier releases only the private ones."""
    return getattr(result, name, None) or getattr(result, "_" + name)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._records = []
        self._seen = {}

    def _record(self, result, status):
        host = _part(result, "host").get_name()
        task = _part(result, "task")
        body = _part(result, "result")
        name = task.get_name()
        count = self._seen[(host, name)] = self._seen.get((host, name), 0) + 1
        entry = dict(host=host, task=name if count == 1 else "%s#%d" % (name, count), action=task.action,
                     status=status,
                     would_run=status == "skipped" and any(text in (body.get("msg") or "") for text in _CANNOT_CHECK))
        if task.action == _REGISTRATION:
            entry.update(results=body.get("results"), summary=body.get("summary"))
        self._records.append(entry)

    def v2_runner_on_ok(self, result):
        self._record(result, "changed" if result.is_changed() else "ok")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("SIPBREAKOUT_TASK_RECORD")
        if not path:
            return
        with open(path, "w") as handle:
            json.dump(self._records, handle, indent=1, sort_keys=True)
