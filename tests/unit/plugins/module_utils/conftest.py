# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures shared by the ledger's tests: a ledger of each store, the PostgreSQL one in a database of its own.

The PostgreSQL server is the test harness's throwaway cluster (``make postgresql``: hack/postgresql.py, described
to tests by tests/postgresql_support.py), which the layers that run these tests start first: the PostgreSQL cases
fail, never skip, without it.
"""

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_postgresql import HAS_PSYCOPG, \
    PostgresqlLedger
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_sqlite import SqliteLedger

from ansible_collections.wgtwo.sipbreakout.tests import postgresql_support

STORES = ("sqlite", "postgresql")


@pytest.fixture(name="make_store", params=STORES)
def make_store_fixture(request, tmp_path):
    """``make_store(scope="default", **kwargs)``: a store of the kind this case is about, all on one ledger."""
    kind = request.param
    if kind == "sqlite":
        path = str(tmp_path / "state" / "ledger.sqlite")
        opened = []

        def make(scope="default", **kwargs):
            store = SqliteLedger(path, scope=scope, **kwargs)
            opened.append(store)
            return store
        yield make
        for store in opened:
            store.close()
        return
    if not HAS_PSYCOPG:
        pytest.fail("psycopg is not installed: the PostgreSQL store cannot be tested")
    server = postgresql_support.server()
    with server.database() as dbname:
        parameters = dict(conninfo=server.conninfo(dbname))
        opened = []

        def make(scope="default", **kwargs):
            store = PostgresqlLedger(parameters, scope=scope, **kwargs)
            opened.append(store)
            return store
        yield make
        for store in opened:
            store.close()
