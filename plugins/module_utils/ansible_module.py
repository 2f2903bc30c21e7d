# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one Ansible-aware util: the shared argument spec and an AnsibleModule that turns errors into failures."""

import atexit
import os
import sys
from collections.abc import Mapping

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.parameters import AnsibleFallbackNotFound

from .auth import HAS_REQUESTS_OAUTHLIB, REQUESTS_OAUTHLIB_IMPORT_ERROR
from .client import GRPC_IMPORT_ERROR, HAS_GRPC
from .errors import SipBreakoutError
from .options import CONNECTION, LEDGER, options_in
from .progress import Progress
from .wire import HAS_PROTOBUF, PROTOBUF_IMPORT_ERROR


def env_fallback(*names):
    """Ansible's env_fallback, except that an empty variable counts as unset.

    AWX injects every variable of a credential type into a job, with an empty string for inputs left empty; those
    must not count as given (an empty WGTWO_ACCESS_TOKEN beside WGTWO_REFRESH_TOKEN is not a conflict).
    """
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    raise AnsibleFallbackNotFound


def shared_argument_spec(group):
    """The argument spec of a group of options.SHARED_OPTIONS, environment fallbacks and no_log included."""
    spec = {}
    for option in options_in(group):
        # no_log always given: Ansible warns about names like token_url that look secret but are not.
        entry = dict(type=option.type, no_log=option.secret)
        if option.default is not None:
            entry["default"] = option.default
        if option.choices:
            entry["choices"] = list(option.choices)
        if option.env:
            entry["fallback"] = (env_fallback, list(option.env))
        spec[option.name] = entry
    return spec


# Documented by the doc fragments wgtwo.sipbreakout.connection and wgtwo.sipbreakout.ledger, from the same table.
CONNECTION_ARGSPEC = shared_argument_spec(CONNECTION)
LEDGER_ARGSPEC = shared_argument_spec(LEDGER)

# The Debian 12 packages of the libraries the modules need (the pbx and keepalive roles install them).
DEBIAN_PACKAGES = {"grpcio": "python3-grpcio", "protobuf": "python3-protobuf",
                   "requests-oauthlib": "python3-requests-oauthlib"}


class SipBreakoutModule(AnsibleModule):
    """An AnsibleModule with the shared options, library checks and readable failures.

    ``as_given`` names options that module_utils checks from the task's own values rather than from what
    Ansible's argument spec made of them: its conversion to a string hides a YAML number (an unquoted
    +4799990000 is the integer 4799990000, an unquoted 00 is 0), and its check of a list of mappings refuses an
    item that is not one with a message that names no item. Their values reach ``run``'s action as given; a list
    item that is not a mapping is shown to the argument spec as an empty one, for module_utils to name by index.
    """

    def __init__(self, argument_spec, as_given=(), **kwargs):
        # The counts the action plugin asked for (a task it runs in the background), from the first moment and
        # removed when the process ends however it ends: that is how the plugin sees the run end.
        self.progress = Progress.from_environment()
        atexit.register(self.progress.close)
        spec = dict(CONNECTION_ARGSPEC)
        spec.update(LEDGER_ARGSPEC)
        spec.update(argument_spec)
        kwargs.setdefault("required_together", []).append(("client_id", "client_secret"))
        kwargs.setdefault("required_by", {}).update(refresh_token=("client_id", "client_secret"))
        kwargs.setdefault("mutually_exclusive", []).append(("access_token", "refresh_token"))
        self._as_given_options = as_given
        self.given = {}
        super().__init__(argument_spec=spec, **kwargs)
        self._check_libraries()

    def _load_params(self):
        # AnsibleModule reads the task's arguments here, before its argument spec converts and checks them.
        super()._load_params()
        for name in self._as_given_options:
            value = self.params.get(name)
            if isinstance(value, list) and not all(isinstance(item, Mapping) for item in value):
                self.given[name] = value
                self.params[name] = [item if isinstance(item, Mapping) else {} for item in value]
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                self.given[name] = value

    def _check_libraries(self):
        needed = [("grpcio", HAS_GRPC, GRPC_IMPORT_ERROR), ("protobuf", HAS_PROTOBUF, PROTOBUF_IMPORT_ERROR)]
        if self.params.get("client_id"):
            needed.append(("requests-oauthlib", HAS_REQUESTS_OAUTHLIB, REQUESTS_OAUTHLIB_IMPORT_ERROR))
        missing = [(name, error) for name, present, error in needed if not present]
        if not missing:
            return
        names = [name for name, _error in missing]
        install = "pip install %s (Debian 12: apt install %s)" % (
            " ".join(names), " ".join(DEBIAN_PACKAGES[name] for name in names))
        if self.check_mode:
            # Check mode predicts from the ledger and sends nothing, so it runs without them (a new host's first
            # check run, before the play has installed them); a real run would fail, so say so.
            self.warn("check mode without %s in %s: the result is predicted from the ledger alone, and a real run "
                      "needs them installed first: %s" % (", ".join(names), sys.executable, install))
            return
        # Every missing library at once, not one failed run each.
        self.fail_json(msg="%d required Python librar%s missing: %s.\n%s\nInstall %s on this host: %s" % (
            len(names), "y is" if len(names) == 1 else "ies are", ", ".join(names),
            "\n".join(missing_required_lib(name) for name in names), "it" if len(names) == 1 else "them",
            install), exception="\n".join(error for _name, error in missing))

    def _invocation(self):
        """What the result echoes of the task's arguments: every option but a list of registrations, which is
        summarised (it may hold a hundred thousand items, and every result already names its item)."""
        echoed = dict(self.params)
        registrations = echoed.get("registrations")
        if isinstance(registrations, list):
            echoed["registrations"] = "%d item(s), not echoed back" % len(registrations)
        return dict(module_args=echoed)

    def exit_json(self, **kwargs):
        # AnsibleModule echoes self.params unless given an invocation; no_log values are masked in it all the same.
        kwargs.setdefault("invocation", self._invocation())
        super().exit_json(**kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs.setdefault("invocation", self._invocation())
        super().fail_json(msg, **kwargs)

    def run(self, action):
        """``action(params, check_mode, diff, on_token, log, progress)`` -> result dict; errors become a failed
        task. The action gets the options of ``as_given`` as the task gave them."""
        try:
            result = action(dict(self.params, **self.given), check_mode=self.check_mode, diff=self._diff,
                            on_token=self.no_log_values.add, log=self.log, progress=self.progress)
        except SipBreakoutError as exc:
            details = dict(phone_number=exc.phone_number)
            if exc.option:
                details["option"] = exc.option
            if getattr(exc, "code", None):
                details["code"] = exc.code
            self.fail_json(msg=str(exc), **details)
        for warning in result.pop("warnings", []):
            self.warn(warning)
        return result
