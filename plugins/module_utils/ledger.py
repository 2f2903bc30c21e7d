# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ledger: what was applied at the operator, since the API cannot be asked. Which store, where, which scope.

``open_ledger(options)`` gives the store the options name (``ledger_store``): ``sqlite``, a file on the host where
the module or keepalive runs (``ledger_path``), or ``postgresql``, a database several hosts, AWX jobs and keepalive
workers share (``ledger_conninfo``, ``login_*``, libpq's environment). Both hold the same facts, per
``ledger_scope``, behind the interface of ``ledger_store.LedgerStore``.
"""

import os
import time

from .errors import ValidationError
from .ledger_postgresql import PostgresqlLedger, connection_parameters
from .ledger_sqlite import SqliteLedger
from .ledger_store import DEFAULT_SCOPE

STORES = ("sqlite", "postgresql")
DEFAULT_STORE = "sqlite"
DEFAULT_LOCK_TIMEOUT = 60.0

# The default SQLite ledger, the same for the module and the keepalive run by the same user: root's in the state
# directory the roles use, any other user's in their XDG state directory.
STATE_DIR = "/var/lib/wgtwo-sipbreakout"
USER_STATE_DIR = "~/.local/state/wgtwo.sipbreakout"
LEDGER_NAME = "ledger.sqlite"
# Where earlier versions kept it by default (an SQLite database since format 2, whatever its name says): still
# used when it exists and the new default does not, so that an upgrade loses nothing.
LEGACY_NAME = "ledger.json"


def default_ledger_path(euid=None):
    """The default ``ledger_path`` for the user ``euid`` (this process's): ``/var/lib/wgtwo-sipbreakout/
    ledger.sqlite`` for root, ``~/.local/state/wgtwo.sipbreakout/ledger.sqlite`` for others; a ledger at an earlier
    default (``ledger.json`` in either directory) is used instead while the new one does not exist."""
    euid = os.geteuid() if euid is None else euid
    directories = [STATE_DIR, USER_STATE_DIR] if euid == 0 else [USER_STATE_DIR]
    directories = [os.path.expanduser(directory) for directory in directories]
    current = os.path.join(directories[0], LEDGER_NAME)
    if os.path.exists(current):
        return current
    for directory in directories:
        legacy = os.path.join(directory, LEGACY_NAME)
        if os.path.exists(legacy):
            return legacy
    return current


def open_ledger(options, clock=time.time):
    """The store and scope ``options`` name (the modules' ledger options, or the keepalive's config keys). Nothing
    is opened or created until it is used."""
    store = options.get("ledger_store") or DEFAULT_STORE
    scope = options.get("ledger_scope") or DEFAULT_SCOPE
    lock_timeout = options.get("lock_timeout") or DEFAULT_LOCK_TIMEOUT
    if store == "sqlite":
        return SqliteLedger(options.get("ledger_path") or default_ledger_path(), scope, lock_timeout, clock)
    if store == "postgresql":
        return PostgresqlLedger(connection_parameters(options), scope, lock_timeout, clock)
    raise ValidationError("ledger_store", "'%s' is not a ledger store; one of %s" % (store, ", ".join(STORES)))
