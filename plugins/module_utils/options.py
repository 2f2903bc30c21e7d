# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options the modules and the keepalive share, declared once.

``SHARED_OPTIONS`` is the one table of them. Everything else derives from it: the modules' argument spec
(``ansible_module.CONNECTION_ARGSPEC`` and ``LEDGER_ARGSPEC``, environment fallbacks included), their documentation
(the doc fragments ``wgtwo.sipbreakout.connection`` and ``wgtwo.sipbreakout.ledger``, which hack/doc_fragments.py
writes from this table: ``make docs``; ``make docs-check`` fails when they are stale), ``connection.OPTIONS``, the
keys, types and defaults of the keepalive's config file, and the list of secrets that no output may show. What cannot
read Python (the keepalive role's argument spec and config template, the pbx role's task, the AWX credential type,
docs/keepalive.md) is held to this table by tests (tests/functional/test_option_table.py,
tests/awx/test_credential_type.py).

Plain Python without Ansible: the keepalive program reads it on hosts that have no Ansible.
"""

CONNECTION = "connection"
LEDGER = "ledger"
GROUPS = (CONNECTION, LEDGER)


class Option:
    """One option: its name and group, and what the argument spec, the docs and the keepalive make of it.

    ``type`` (the argument ``kind``) is an Ansible argument spec type (``str``, ``path``, ``int``, ``float``,
    ``bool``); ``default`` is the modules' default (None: none); ``env`` the environment variables the modules fall
    back to, the first non-empty one winning; ``secret`` means never shown (``no_log``); ``credential`` means a
    credential carries it: the AWX credential type injects it, and the playbooks and the pbx role pass it on from
    ``sipbreakout_<name>``; ``description`` the documentation's lines in Ansible markup, without the line about the
    environment variable, which the doc fragment adds.
    """

    __slots__ = ("name", "group", "type", "default", "choices", "env", "secret", "credential", "description")

    def __init__(self, name, group, kind, default=None, choices=(), env=(), secret=False, credential=False,
                 description=()):
        self.name = name
        self.group = group
        self.type = kind
        self.default = default
        self.choices = tuple(choices)
        self.env = tuple(env)
        self.secret = secret
        self.credential = credential
        self.description = tuple(description)

    def __repr__(self):
        return "Option(%r)" % self.name


# In the order the docs list them (ansible-doc sorts them by name).
SHARED_OPTIONS = (
    # ------------------------------------------------------------------------------------------ connection
    Option(
        "api_endpoint", CONNECTION, "str", default="api.wgtwo.com:443", env=["WGTWO_API_ENDPOINT"], credential=True,
        description=[
            "The gRPC endpoint of the API, as V(HOST:PORT). Port 443 is assumed when left out.",
            "The public sandbox is V(sandbox.api.wgtwo.com:443); it accepts calls without credentials.",
            "The connection is always TLS; there is no plaintext mode.",
        ]),
    Option(
        "client_id", CONNECTION, "str", env=["WGTWO_CLIENT_ID"], credential=True, description=[
            "OAuth 2.0 client id, used with O(client_secret) to get client-credentials tokens with scope "
            "V(call.routing:write) from O(token_url), or with O(refresh_token).",
            "With client-credentials tokens every registration needs a O(ignore:phone_number).",
        ]),
    Option(
        "client_secret", CONNECTION, "str", env=["WGTWO_CLIENT_SECRET"], secret=True, credential=True, description=[
            "OAuth 2.0 client secret, sent to O(token_url) only, as HTTP basic auth.",
            "Never written to the token cache, the ledger or any output.",
        ]),
    Option(
        "access_token", CONNECTION, "str", env=["WGTWO_ACCESS_TOKEN"], secret=True, credential=True, description=[
            "An access token obtained elsewhere, for example a user token from the authorization-code flow, which "
            "belongs to one subscription so that O(ignore:phone_number) may be left out. Given or not, the number is "
            "the token's, so the same O(ignore:sip_uri) with and without it is one registration.",
            "Cannot be renewed; when the API rejects it the task fails and says so.",
            "Mutually exclusive with O(refresh_token) and O(client_id).",
        ]),
    Option(
        "refresh_token", CONNECTION, "str", env=["WGTWO_REFRESH_TOKEN"], secret=True, credential=True, description=[
            "A refresh token (authorization-code flow with scope V(offline_access)), traded at O(token_url) for "
            "access tokens with O(client_id) and O(client_secret).",
            "The operator rotates refresh tokens; the newest is kept in O(token_cache_path) and used from then on.",
        ]),
    Option(
        "token_url", CONNECTION, "str", default="https://id.wgtwo.com/oauth2/token", env=["WGTWO_TOKEN_URL"],
        credential=True, description=[
            "The OAuth 2.0 token endpoint. Must be C(https://).",
        ]),
    Option(
        "ca_path", CONNECTION, "path", env=["WGTWO_CA_PATH"], credential=True, description=[
            "A PEM file of CA certificates to trust for the API and the token endpoint, for a private CA.",
            "When not set, the host's system trust store is used.",
        ]),
    Option(
        "token_cache_path", CONNECTION, "path", default="~/.cache/wgtwo.sipbreakout/tokens.json",
        env=["WGTWO_TOKEN_CACHE_PATH"], description=[
            "File where access tokens (and rotated refresh tokens) are kept between tasks, so that a play asks the "
            "token endpoint once rather than once per task. Created with mode 0600 in a 0700 directory.",
            "It never holds the client secret. Entries are keyed by a digest of the token URL, client and "
            "credentials.",
        ]),
    Option(
        "timeout", CONNECTION, "float", default=10.0, description=[
            "Seconds one operation may take in all, retries and token requests included.",
        ]),
    Option(
        "retries", CONNECTION, "int", default=5, description=[
            "How many times a transient failure (V(UNAVAILABLE), V(DEADLINE_EXCEEDED), V(RESOURCE_EXHAUSTED), token "
            "endpoint errors 5xx and connection errors) is retried, with exponential backoff and jitter, within "
            "O(timeout).",
            "Rejections (V(STATUS_CODE_NOT_ACCEPTABLE)) and invalid input are never retried.",
        ]),
    # ------------------------------------------------------------------------------------------ ledger
    Option(
        "ledger_store", LEDGER, "str", default="sqlite", choices=["sqlite", "postgresql"], env=["WGTWO_LEDGER_STORE"],
        description=[
            "Where the ledger is kept: the record of what was applied, when its last successful upsert was and the "
            "time to live the API returned. The API has no read call, so the ledger is how the collection knows what "
            "it applied.",
            "V(sqlite) is a file (O(ledger_path)) on the host where the module runs. It needs no server, and suits a "
            "host that keeps its own registrations and runs the keepalive that refreshes them.",
            "V(postgresql) is a PostgreSQL database that many hosts share, reached with O(ledger_conninfo) and the "
            "C(login_*), O(ssl_mode) and O(ca_cert) options, through psycopg 3 on the host where the module runs. Use "
            "it where that host does not outlive the run (AWX and automation controller jobs, whose containers are "
            "thrown away after each job), for a cluster whose nodes serve the same numbers, and for keepalive workers "
            "on several hosts that share the refreshes. Each host or cluster then works on its own O(ledger_scope).",
            "Each entry belongs to the endpoint and the credentials that applied it (a client id, the subscription of "
            "a refresh token, or no credentials); O(ignore:purge) and the keepalive only act on their own. An access "
            "token cannot tell whose it is, so all access tokens share their entries. Give each subscriber who uses "
            "O(ignore:access_token) a ledger or a O(ledger_scope) of their own.",
            "The ledger never holds a token or secret.",
        ]),
    Option(
        "ledger_path", LEDGER, "path", description=[
            "The ledger of O(ledger_store=sqlite): an SQLite database on the host where the module runs. Not used "
            "with O(ledger_store=postgresql).",
            "When not set, C(/var/lib/wgtwo-sipbreakout/ledger.sqlite) for root and "
            "C(~/.local/state/wgtwo.sipbreakout/ledger.sqlite) for other users: the same file for the module and "
            "the keepalive when they run as the same user.",
            "Python's own C(sqlite3), write-ahead log, created with mode 0600 in a 0700 directory, as are the C(-wal) "
            "and C(-shm) files beside it while it is in use. Each update is one transaction, so parallel forks and "
            "the keepalive can share it, and adding one registration to a ledger of a million writes one row.",
            "Earlier versions named the default C(ledger.json) (in C(~/.local/state/wgtwo.sipbreakout/) for the "
            "module, in C(/var/lib/wgtwo-sipbreakout/) for the keepalive): a ledger at such a name is used when it "
            "exists and the new default does not, so an upgrade keeps using it.",
            "A ledger of an earlier version of this collection (a JSON file) is converted at the same path the first "
            "time a task or the keepalive uses it, even in check mode; the JSON file is kept as "
            "C(<ledger_path>.json-v1.bak).",
            "A corrupt ledger, or another program's database, fails the task and is left untouched.",
        ]),
    Option(
        "ledger_scope", LEDGER, "str", default="default", env=["WGTWO_LEDGER_SCOPE"], description=[
            "Which set of registrations in the ledger this task works on, so that one ledger, above all a shared "
            "PostgreSQL database, holds the registrations of many hosts, clusters or AWX inventories apart.",
            "O(ignore:purge), P(wgtwo.sipbreakout.registration_info#module), the keepalive's passes, its health file "
            "and the orphans it reports see only the registrations of their own scope: what another scope holds is "
            "neither purged nor refreshed nor reported.",
            "Give each inventory host that keeps its own numbers, or each cluster whose nodes serve the same numbers, "
            "a scope of its own (for example its inventory hostname or its group name) on a shared database, and its "
            "keepalive the same scope. The default scope suits a ledger that one host keeps for itself.",
        ]),
    Option(
        "ledger_conninfo", LEDGER, "str", env=["WGTWO_LEDGER_CONNINFO"], secret=True, description=[
            "The database of O(ledger_store=postgresql), as a libpq connection string (V(host=db.example.com "
            "dbname=sipbreakout)) or URI "
            "(V(postgresql://sipbreakout@db.example.com/sipbreakout?sslmode=verify-full)).",
            "O(login_host), O(login_port), O(login_user), O(login_password), O(login_db), O(ssl_mode) and O(ca_cert) "
            "override its parts. What neither gives comes from libpq on the host where the module runs: its "
            "environment variables (E(PGHOST), E(PGPORT), E(PGDATABASE), E(PGUSER), E(PGPASSWORD), E(PGSERVICE), "
            "E(PGSERVICEFILE), E(PGPASSFILE), E(PGSSLMODE), E(PGSSLROOTCERT)), its service file and password file, "
            "then its defaults. See U(https://www.postgresql.org/docs/current/libpq-connect.html).",
            "It may carry a password, so it is treated as a secret: never logged nor shown in a result, a diff or an "
            "error message; messages about the database name its host, port and database only.",
            "Only used with O(ledger_store=postgresql).",
        ]),
    Option(
        "login_host", LEDGER, "str", description=[
            "The PostgreSQL server's host name or address (libpq C(host)), or the directory of its Unix-domain socket "
            "(a path starting with C(/)).",
            "Overrides the host of O(ledger_conninfo). Only used with O(ledger_store=postgresql).",
        ]),
    Option(
        "login_port", LEDGER, "int", description=[
            "The PostgreSQL server's port (libpq C(port)); libpq's default is 5432.",
            "Overrides the port of O(ledger_conninfo). Only used with O(ledger_store=postgresql).",
        ]),
    Option(
        "login_user", LEDGER, "str", description=[
            "The PostgreSQL role to log in as (libpq C(user)); libpq's default is the name of the system user the "
            "module runs as.",
            "Overrides the user of O(ledger_conninfo). Only used with O(ledger_store=postgresql).",
        ]),
    Option(
        "login_password", LEDGER, "str", secret=True, description=[
            "The password of O(login_user) (libpq C(password)), if the server asks for one. A password file "
            "(E(PGPASSFILE), C(~/.pgpass)) on the host where the module runs serves as well.",
            "Overrides the password of O(ledger_conninfo). Only used with O(ledger_store=postgresql).",
            "Never logged nor shown in a result, a diff or an error message, and never written to the ledger.",
        ]),
    Option(
        "login_db", LEDGER, "str", description=[
            "The database that holds the ledger (libpq C(dbname)); libpq's default is the user's name. The collection "
            "creates and upgrades its own tables in it.",
            "Overrides the database of O(ledger_conninfo). Only used with O(ledger_store=postgresql).",
        ]),
    Option(
        "ssl_mode", LEDGER, "str", choices=["disable", "allow", "prefer", "require", "verify-ca", "verify-full"],
        description=[
            "Whether and how the connection to the PostgreSQL server is encrypted and the server checked (libpq "
            "C(sslmode)); see U(https://www.postgresql.org/docs/current/libpq-ssl.html).",
            "V(verify-full) checks that the server's certificate is signed by a CA of O(ca_cert) and names the host "
            "connected to: use it whenever the network between the two is not yours alone. V(verify-ca) checks the CA "
            "only, V(require) encrypts without checking who answers, and V(prefer), V(allow) and V(disable) may send "
            "everything, the password included, in the clear.",
            "When not set, the mode of O(ledger_conninfo) applies, else libpq's (E(PGSSLMODE), else V(prefer)). Only "
            "used with O(ledger_store=postgresql).",
        ]),
    Option(
        "ca_cert", LEDGER, "path", description=[
            "A PEM file of CA certificates, on the host where the module runs, that the PostgreSQL server's "
            "certificate must be signed by (libpq C(sslrootcert)), for O(ssl_mode=verify-ca) and "
            "O(ssl_mode=verify-full). The CA of the API is O(ignore:ca_path), not this.",
            "When not set, the one of O(ledger_conninfo) applies, else libpq's (E(PGSSLROOTCERT), else "
            "C(~/.postgresql/root.crt)). Only used with O(ledger_store=postgresql).",
        ]),
    Option(
        "lock_timeout", LEDGER, "float", default=60.0, description=[
            "Seconds a run waits for the ledger while another run holds it (the lock of an SQLite ledger; on "
            "PostgreSQL, the registrations another module run or keepalive worker has claimed) before it fails, "
            "naming the ledger.",
            "The keepalive's config file takes the same key, with 120 seconds as its default.",
        ]),
)

OPTION_BY_NAME = dict((option.name, option) for option in SHARED_OPTIONS)
# Names of the options no output may show (the modules' no_log), in the table's order.
SECRETS = tuple(option.name for option in SHARED_OPTIONS if option.secret)
# Names of the options a credential carries (the AWX credential type, the playbooks' and pbx role's sipbreakout_*).
CREDENTIAL_OPTIONS = tuple(option.name for option in SHARED_OPTIONS if option.credential)


def options_in(*groups):
    """The options of ``groups`` (CONNECTION, LEDGER), in the table's order."""
    return tuple(option for option in SHARED_OPTIONS if option.group in groups)


def names_in(*groups):
    """The names of the options of ``groups``, in the table's order."""
    return tuple(option.name for option in options_in(*groups))
