# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Entries copied from one ledger store to another: an SQLite ledger imported into a scope of the shared
PostgreSQL ledger (``import_ledger``, the ``ledger_import`` module), and the keepalive's local copy of a shared
ledger (``copy_ledger``).

Both read the source a page at a time and write a batch at a time, so memory does not grow with the ledger.
"""

import os

from .errors import LedgerError
from .ledger import default_ledger_path, open_ledger
from .ledger_sqlite import SqliteLedger

BATCH = 10000


def _batches(source):
    batch = []
    for entry in source.find():
        entry.release()  # a claim belongs to a process of the source's, which never works on the target
        batch.append((entry.key, entry))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def import_ledger(source, target, check_mode=False):
    """Add to ``target`` every entry of ``source`` it does not hold (by key): once, idempotently. An entry the
    target holds already stays as it is there (the target is the one in use). Returns ``dict(source=,
    imported=, present=, target=)``: the source's entries, those added, those already there, and the target's
    entries afterwards; LedgerError if, afterwards, the target does not hold every key of the source."""
    counts = dict(source=0, imported=0, present=0)
    for batch in _batches(source):
        counts["source"] += len(batch)
        keys = [key for key, _entry in batch]
        if check_mode:
            held = target.get(keys)
            counts["present"] += len(held)
            counts["imported"] += len(keys) - len(held)
            continue
        with target.update(keys, exclusive=True) as entries:
            for key, entry in batch:
                if key in entries:
                    counts["present"] += 1
                else:
                    entries[key] = entry
                    counts["imported"] += 1
        missing = len(keys) - len(target.get(keys))
        if missing:
            raise LedgerError("%d of %d entries of %s were not found in %s after the import; nothing was removed "
                              "from the source" % (missing, len(keys), source.describe(), target.describe()))
    counts["target"] = target.count()
    return counts


def copy_ledger(source, path, scope, lock_timeout, clock):
    """The entries of ``source`` as a complete SQLite ledger at ``path``: written beside it, then renamed over it,
    so that the copy at ``path`` is always whole."""
    fresh = path + ".new"
    for leftover in (fresh, fresh + "-wal", fresh + "-shm", fresh + "-journal"):
        if os.path.exists(leftover):
            os.unlink(leftover)
    target = SqliteLedger(fresh, scope, lock_timeout, clock)
    try:
        for batch in _batches(source):
            target.insert(batch)
        target.insert([])  # the database exists even when the source is empty
    finally:
        target.close()
    os.rename(fresh, path)


def import_from_options(options, check_mode=False):
    """The ``ledger_import`` module: the SQLite ledger at ``source_path`` (the default ledger when not set) into
    the ledger the ledger options name. Returns the module's result."""
    source = SqliteLedger(options.get("source_path") or default_ledger_path(), options.get("source_scope"),
                          options.get("lock_timeout") or 60.0)
    with source, open_ledger(options) as target:
        if target.kind == source.kind and target.location == source.location and target.scope == source.scope:
            raise LedgerError("source_path: %s is the target ledger itself; name another ledger or scope"
                              % source.describe())
        counts = import_ledger(source, target, check_mode=check_mode)
        return dict(changed=counts["imported"] > 0, counts=counts, source_path=source.path,
                    ledger_path=target.location, ledger_scope=target.scope)
