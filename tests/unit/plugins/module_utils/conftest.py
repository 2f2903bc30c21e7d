# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures shared by the ledger's tests: a ledger of each store, the PostgreSQL one in a database of its own.

The PostgreSQL server is the test harness's throwaway cluster (``make postgresql``; hack/postgresql.sh), which
`make units`, `make units-debian` and `make functional` start first. Without it the PostgreSQL cases are skipped
and say why, unless SIPBREAKOUT_REQUIRE_POSTGRESQL is set (as `.ci/run` sets it), which makes them fail.
"""

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_postgresql import HAS_PSYCOPG, \
    PostgresqlLedger
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_sqlite import SqliteLedger

try:
    from ansible_collections.wgtwo.sipbreakout.tests.postgresql_support import fresh_database, unavailable
except ImportError:  # the test tree is not importable as a package (plain pytest of a file elsewhere)
    fresh_database = unavailable = None

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
    why = "psycopg is not installed" if not HAS_PSYCOPG else unavailable() if unavailable else "no test harness"
    if why:
        pytest.skip("PostgreSQL store not tested: %s" % why)
    with fresh_database() as parameters:
        opened = []

        def make(scope="default", **kwargs):
            store = PostgresqlLedger(parameters, scope=scope, **kwargs)
            opened.append(store)
            return store
        yield make
        for store in opened:
            store.close()
