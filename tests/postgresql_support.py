"""Provisional (lead's dev only): fresh databases on the dev cluster named by PGTEST_ADMIN_DSN."""
import contextlib, os, uuid
import psycopg

def unavailable():
    return None if os.environ.get("PGTEST_ADMIN_DSN") else "PGTEST_ADMIN_DSN unset"

@contextlib.contextmanager
def fresh_database():
    admin = os.environ["PGTEST_ADMIN_DSN"]
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE DATABASE %s" % name)
    try:
        params = psycopg.conninfo.conninfo_to_dict(admin)
        params["dbname"] = name
        yield dict(conninfo=psycopg.conninfo.make_conninfo(**params))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("DROP DATABASE %s WITH (FORCE)" % name)
