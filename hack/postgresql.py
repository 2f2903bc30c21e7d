# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The test PostgreSQL: a throwaway cluster of Debian's PostgreSQL 15 for the tests (`make postgresql`).

  postgresql.py start [DIR]    create it once, start it; a running one is reused, a stale one (killed run) restarted
  postgresql.py stop [DIR]     stop it (fast shutdown); succeeds when none runs
  postgresql.py status [DIR]   one line; exit 0 running, 3 stopped, 4 none at DIR
  postgresql.py env [DIR]      `export` lines for a shell: SIPBREAKOUT_TEST_POSTGRESQL, PGSERVICEFILE, PGSERVICE,
                               PGPASSFILE (eval "$(... env)" and psql connects with verify-full and the password)
  postgresql.py clean [DIR]    stop it and remove DIR (and the cluster's folder under /tmp when it has one)

DIR defaults to .build/postgresql. Run it as root (PostgreSQL runs as the `postgres` user, through runuser) or as
that user. The cluster listens on 127.0.0.1 only, on a free port picked at creation (kept while it is free), with
TLS from a CA made here; its socket folder is inside the cluster folder. What it holds:

- the superuser `pgadmin`: over the socket only, for root and postgres (peer authentication);
- the login role `sipbreakout` (no other privilege) with a random password, scram-sha-256, required on every TCP
  connection, and the database `sipbreakout` it owns;
- a server certificate for `localhost` and 127.0.0.1 (`sslmode=verify-full` works with the CA; any other name is
  refused, e.g. host=not-in-the-certificate.invalid hostaddr=127.0.0.1).

DIR holds (root's; the secrets and the description 0600): postgresql.json, the description the tests read
(tests/postgresql_support.py); sipbreakout.password; pgpass and pg_service.conf (service `sipbreakout`) for
PGPASSFILE / PGSERVICEFILE; ca.pem; outage.lock (tests/postgresql_support.py's outages); cluster/, the postgres
user's folder (data/, run/ for the socket, the TLS key, postgresql.log). When the postgres user cannot reach DIR
(a clone under /root) or the socket's path would be too long, cluster/ is a link to a folder under /tmp.

The password is never printed. fsync is off: an operating system crash may lose the cluster (it is a throwaway), a
server crash or `pg_ctl stop -m immediate` loses nothing committed.
"""

import datetime
import ipaddress
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN_DIR = os.environ.get("SIPBREAKOUT_POSTGRESQL_BIN", "/usr/lib/postgresql/15/bin")
OS_USER = "postgres"
ADMIN = "pgadmin"
ROLE = "sipbreakout"
DATABASE = "sipbreakout"
SERVICE = "sipbreakout"
HOST = "localhost"
ADDRESS = "127.0.0.1"
MISMATCH_HOST = "not-in-the-certificate.invalid"
# tests/postgresql_support.py names its databases so; a start after a killed run drops the ones left over.
TEST_DATABASE_PREFIX = "sbt_"
DESCRIPTION = "postgresql.json"
CONF = "sipbreakout-test.conf"
START_TIMEOUT = 60
# A Unix socket's path has room for 107 bytes.
SOCKET_PATH_MAX = 100

PG_HBA = """\
# Written by hack/postgresql.py. The superuser only over the socket, for root and postgres; the test role only with
# its password (scram-sha-256) on TCP, TLS or not (hostssl is matched first); nothing else.
local   all  {admin}  peer map=harness
local   all  {role}  scram-sha-256
hostssl all  {role}  {address}/32  scram-sha-256
host    all  {role}  {address}/32  scram-sha-256
local   all  all  reject
host    all  all  0.0.0.0/0  reject
host    all  all  ::/0  reject
"""

PG_IDENT = """\
# Written by hack/postgresql.py: the operating system users that may be the superuser over the socket.
harness  root      {admin}
harness  postgres  {admin}
"""

SERVER_CONF = """\
# Written by hack/postgresql.py (included by postgresql.conf).
listen_addresses = '{address}'
port = {port}
unix_socket_directories = '{socket_dir}'
unix_socket_permissions = 0700
ssl = on
ssl_cert_file = '{cluster}/server.crt'
ssl_key_file = '{cluster}/server.key'
password_encryption = 'scram-sha-256'
# A throwaway: an operating system crash may lose it; a server crash loses nothing committed.
fsync = off
log_line_prefix = '%m [%p] %q%u@%d '
"""


class HarnessError(Exception):
    """A step failed; the message says which and what to look at."""


def say(message):
    sys.stdout.write("postgresql: %s\n" % message)
    sys.stdout.flush()


def clean_environment():
    """libpq and the server programs read PG* variables (a service, a host address); none may steer the harness."""
    for name in list(os.environ):
        if name.startswith("PG"):
            del os.environ[name]


def as_postgres(command):
    """COMMAND as the postgres user: through runuser for root, as it is for that user."""
    if os.geteuid() == pwd.getpwnam(OS_USER).pw_uid:
        return command
    if os.geteuid() != 0:
        raise HarnessError("run as root or as %s: PostgreSQL runs as the %s user" % (OS_USER, OS_USER))
    return ["runuser", "-u", OS_USER, "--"] + command


def run_as_postgres(command, what):
    # cwd /: the postgres user may not be allowed into the caller's folder
    result = subprocess.run(as_postgres(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/",
                            stdin=subprocess.DEVNULL, universal_newlines=True, check=False)
    if result.returncode != 0:
        raise HarnessError("%s failed (exit %d): %s" % (what, result.returncode, result.stdout.strip()))
    return result.stdout


def write_private(path, text, mode=0o600):
    """Write PATH with MODE from the start (never readable by others in between), replacing it atomically."""
    temporary = "%s.%d.tmp" % (path, os.getpid())
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def give_to_postgres(path):
    user = pwd.getpwnam(OS_USER)
    os.chown(path, user.pw_uid, user.pw_gid)


def free_port():
    """A free port below the ephemeral range: while the server is stopped for an outage test, no outgoing
    connection of the machine can take its port and keep it from starting again."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as handle:
            ephemeral = int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    for _attempt in range(200):
        port = secrets.SystemRandom().randrange(max(1024, ephemeral - 12000), ephemeral)
        if port_is_free(port):
            return port
    raise HarnessError("found no free port on %s below %d" % (ADDRESS, ephemeral))


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ADDRESS, port))
        except OSError:
            return False
        return True


class Paths:
    """Where everything of the cluster at state_dir lives."""

    def __init__(self, state_dir):
        self.state_dir = os.path.abspath(state_dir)
        self.description = os.path.join(self.state_dir, DESCRIPTION)
        self.password = os.path.join(self.state_dir, "%s.password" % ROLE)
        self.passfile = os.path.join(self.state_dir, "pgpass")
        self.service_file = os.path.join(self.state_dir, "pg_service.conf")
        self.ca = os.path.join(self.state_dir, "ca.pem")
        self.lock = os.path.join(self.state_dir, "outage.lock")
        self.cluster_link = os.path.join(self.state_dir, "cluster")

    @property
    def cluster(self):
        return os.path.realpath(self.cluster_link)

    @property
    def data(self):
        return os.path.join(self.cluster, "data")

    @property
    def socket_dir(self):
        return os.path.join(self.cluster, "run")

    @property
    def log(self):
        return os.path.join(self.cluster, "postgresql.log")


def load_description(paths):
    """postgresql.json when the cluster it describes still exists (it is written last, when all else is done)."""
    try:
        with open(paths.description, encoding="utf-8") as handle:
            description = json.load(handle)
    except (OSError, ValueError):
        return None
    if not os.path.isfile(os.path.join(description.get("data_dir", ""), "PG_VERSION")):
        return None
    return description


def reachable_by_postgres(path):
    result = subprocess.run(as_postgres(["test", "-x", path]), stdin=subprocess.DEVNULL, check=False)
    return result.returncode == 0


def make_cluster_dir(paths):
    """cluster/ in DIR, or a link to a folder under /tmp when postgres cannot reach DIR or the socket path is long."""
    here = paths.cluster_link
    socket_path = os.path.join(here, "run", ".s.PGSQL.65535")
    if len(socket_path) <= SOCKET_PATH_MAX and reachable_by_postgres(paths.state_dir):
        os.mkdir(here, 0o700)
    else:
        os.symlink(tempfile.mkdtemp(prefix="sipbreakout-postgresql-"), here)
    cluster = paths.cluster
    os.chmod(cluster, 0o700)
    give_to_postgres(cluster)
    os.mkdir(paths.socket_dir, 0o700)
    give_to_postgres(paths.socket_dir)


def remove_cluster(paths):
    """Remove DIR and, when cluster/ is a link, the folder it points to."""
    if os.path.islink(paths.cluster_link):
        shutil.rmtree(paths.cluster, ignore_errors=True)
    shutil.rmtree(paths.state_dir, ignore_errors=True)


def make_certificates(paths):
    """A test CA (ca.pem) and a server certificate for localhost and 127.0.0.1 signed by it; the CA key is not kept."""
    # pylint: disable=import-outside-toplevel
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    not_before, not_after = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=3650)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wgtwo.sipbreakout test PostgreSQL CA")])
    ca_cert = (x509.CertificateBuilder()
               .subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                            crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
                   .issuer_name(ca_name)
                   .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(not_before).not_valid_after(not_after)
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST),
                                                               x509.IPAddress(ipaddress.ip_address(ADDRESS))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False)
                   .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    write_private(paths.ca, ca_cert.public_bytes(pem).decode("ascii"), mode=0o644)
    server_files = {
        "server.crt": (server_cert.public_bytes(pem), 0o644),
        "server.key": (server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()), 0o600),
    }
    for name, (content, mode) in server_files.items():
        path = os.path.join(paths.cluster, name)
        write_private(path, content.decode("ascii"), mode=mode)
        give_to_postgres(path)


def write_server_config(paths, port):
    text = SERVER_CONF.format(address=ADDRESS, port=port, socket_dir=paths.socket_dir, cluster=paths.cluster)
    path = os.path.join(paths.data, CONF)
    write_private(path, text)
    give_to_postgres(path)


def write_client_files(paths, port, password):
    """pgpass (the password, 0600), pg_service.conf (service `sipbreakout`, verify-full with the CA). The service
    names no database: a service's keywords win over libpq's variables, and PGDATABASE must be able to choose one
    (without it, libpq takes the user's name, the database `sipbreakout`)."""
    # pgpass fields escape ':' and '\'; the password is URL-safe base64 and has neither.
    write_private(paths.passfile, "*:%d:*:%s:%s\n" % (port, ROLE, password))
    write_private(paths.service_file,
                  "# Written by hack/postgresql.py: PGSERVICEFILE=this file PGSERVICE=%s PGPASSFILE=%s\n"
                  "[%s]\nhost=%s\nport=%d\nuser=%s\nsslmode=verify-full\nsslrootcert=%s\n"
                  % (SERVICE, paths.passfile, SERVICE, HOST, port, ROLE, paths.ca))


def write_description(paths, port, version):
    description = {
        "host": HOST,
        "hostaddr": ADDRESS,
        "port": port,
        "dbname": DATABASE,
        "user": ROLE,
        "password_file": paths.password,
        "sslmode": "verify-full",
        "sslrootcert": paths.ca,
        "server_names": [HOST, ADDRESS],
        "mismatch_host": MISMATCH_HOST,
        "service_file": paths.service_file,
        "service": SERVICE,
        "passfile": paths.passfile,
        "admin_user": ADMIN,
        "socket_dir": paths.socket_dir,
        "data_dir": paths.data,
        "log_file": paths.log,
        "bin_dir": BIN_DIR,
        "os_user": OS_USER,
        "lock_file": paths.lock,
        "test_database_prefix": TEST_DATABASE_PREFIX,
        "server_version": version,
    }
    write_private(paths.description, json.dumps(description, indent=2, sort_keys=True) + "\n")


def admin_connect(paths, port, dbname="postgres"):
    import psycopg  # pylint: disable=import-outside-toplevel
    return psycopg.connect(host=paths.socket_dir, port=port, user=ADMIN, dbname=dbname, autocommit=True,
                           connect_timeout=10)


def create_roles(paths, port, password):
    """The test role with a scram-sha-256 verifier made here (the password itself never reaches the server's
    statements or log), and its database."""
    from psycopg import sql  # pylint: disable=import-outside-toplevel
    with admin_connect(paths, port) as connection:
        verifier = connection.pgconn.encrypt_password(password.encode(), ROLE.encode(), b"scram-sha-256").decode()
        connection.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(ROLE),
                                                                              sql.Literal(verifier)))
        connection.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0")
                           .format(sql.Identifier(DATABASE), sql.Identifier(ROLE)))
        return connection.execute("SHOW server_version").fetchone()[0]


def drop_leftover_databases(paths, port):
    """Test databases a killed run left behind (tests/postgresql_support.py drops its own)."""
    from psycopg import sql  # pylint: disable=import-outside-toplevel
    with admin_connect(paths, port) as connection:
        names = [row[0] for row in connection.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (TEST_DATABASE_PREFIX,))]
        for name in names:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    if names:
        say("dropped %d test databases a killed run left" % len(names))


def pids_in(data_dir):
    """Processes whose working directory is DATA_DIR: a postmaster and its children chdir there."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.path.realpath(os.readlink("/proc/%s/cwd" % entry)) == data_dir:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def postmaster_pid(paths):
    """The PID of the postmaster serving this cluster, or None. postmaster.pid alone can lie after a killed run
    (its PID may belong to another process by now): the process must also work in this data folder."""
    try:
        with open(os.path.join(paths.data, "postmaster.pid"), encoding="utf-8") as handle:
            pid = int(handle.readline().strip())
    except (OSError, ValueError):
        return None
    return pid if pid in pids_in(paths.data) else None


def clear_stale_run(paths):
    """After a killed run: end what is left of its server (backends outlive a SIGKILLed postmaster for a while and
    hold its shared memory) and remove its lock files, so that pg_ctl can start."""
    leftovers = pids_in(paths.data)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 10
    while pids_in(paths.data) and time.monotonic() < deadline:
        time.sleep(0.05)
    stale = [os.path.join(paths.data, "postmaster.pid")]
    if os.path.isdir(paths.socket_dir):
        stale += [os.path.join(paths.socket_dir, name) for name in os.listdir(paths.socket_dir)]
    removed = [path for path in stale if os.path.lexists(path)]
    for path in removed:
        os.unlink(path)
    if leftovers or removed:
        say("cleared a killed run: %d processes ended, %d stale files removed" % (len(leftovers), len(removed)))


def pg_ctl_start(paths):
    try:
        run_as_postgres([os.path.join(BIN_DIR, "pg_ctl"), "-D", paths.data, "-l", paths.log, "-w",
                         "-t", str(START_TIMEOUT), "start"], "pg_ctl start")
    except HarnessError as error:
        raise HarnessError("%s\nlast lines of %s:\n%s" % (error, paths.log, tail(paths.log)))


def tail(path, lines=20):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError as error:
        return str(error)


def wait_connectable(paths, port):
    import psycopg  # pylint: disable=import-outside-toplevel
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with admin_connect(paths, port):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def create(paths):
    """initdb, configuration, TLS, start, roles; postgresql.json last (a killed creation is started anew)."""
    remove_cluster(paths)
    os.makedirs(paths.state_dir, 0o755)
    make_cluster_dir(paths)
    run_as_postgres([os.path.join(BIN_DIR, "initdb"), "-D", paths.data, "-U", ADMIN, "--auth=reject",
                     "--encoding=UTF8", "--no-locale", "--no-sync"], "initdb")
    with open(os.path.join(paths.data, "postgresql.conf"), "a", encoding="utf-8") as handle:
        handle.write("\ninclude '%s'\n" % CONF)
    for name, template in (("pg_hba.conf", PG_HBA), ("pg_ident.conf", PG_IDENT)):
        path = os.path.join(paths.data, name)
        write_private(path, template.format(admin=ADMIN, role=ROLE, address=ADDRESS))
        give_to_postgres(path)
    make_certificates(paths)
    port = free_port()
    write_server_config(paths, port)
    password = secrets.token_urlsafe(24)
    write_private(paths.password, password)
    write_client_files(paths, port, password)
    write_private(paths.lock, "")
    pg_ctl_start(paths)
    version = create_roles(paths, port, password)
    write_description(paths, port, version)
    return port


def start(paths):
    began = time.monotonic()
    description = load_description(paths)
    if description is None:
        port = create(paths)
        say("created and started a cluster on %s:%d in %.1f s (%s)"
            % (ADDRESS, port, time.monotonic() - began, paths.state_dir))
        return 0
    port = description["port"]
    if postmaster_pid(paths) is not None:
        wait_connectable(paths, port)
        say("running on %s:%d, reused (%s)" % (ADDRESS, port, paths.state_dir))
        return 0
    clear_stale_run(paths)
    if not port_is_free(port):
        old, port = port, free_port()
        say("port %d is taken now; moving to %d" % (old, port))
        write_server_config(paths, port)
        with open(paths.password, encoding="utf-8") as handle:
            write_client_files(paths, port, handle.read().strip())
        write_description(paths, port, description["server_version"])
    pg_ctl_start(paths)
    drop_leftover_databases(paths, port)
    say("started on %s:%d in %.1f s (%s)" % (ADDRESS, port, time.monotonic() - began, paths.state_dir))
    return 0


def stop(paths):
    if not os.path.isdir(paths.data):
        say("none at %s" % paths.state_dir)
        return 0
    if postmaster_pid(paths) is None:
        clear_stale_run(paths)
        say("not running (%s)" % paths.state_dir)
        return 0
    run_as_postgres([os.path.join(BIN_DIR, "pg_ctl"), "-D", paths.data, "-m", "fast", "-w",
                     "-t", str(START_TIMEOUT), "stop"], "pg_ctl stop")
    say("stopped (%s)" % paths.state_dir)
    return 0


def status(paths):
    description = load_description(paths)
    if description is None:
        say("none at %s" % paths.state_dir)
        return 4
    pid = postmaster_pid(paths)
    if pid is None:
        say("stopped (%s)" % paths.state_dir)
        return 3
    say("running on %s:%d, PID %d, PostgreSQL %s (%s)"
        % (ADDRESS, description["port"], pid, description["server_version"], paths.state_dir))
    return 0


def env(paths):
    if load_description(paths) is None:
        raise HarnessError("none at %s: run `make postgresql` first" % paths.state_dir)
    for name, value in (("SIPBREAKOUT_TEST_POSTGRESQL", paths.description), ("PGSERVICEFILE", paths.service_file),
                        ("PGSERVICE", SERVICE), ("PGPASSFILE", paths.passfile)):
        sys.stdout.write("export %s=%s\n" % (name, shlex.quote(value)))
    return 0


def clean(paths):
    stop(paths)
    remove_cluster(paths)
    say("removed %s" % paths.state_dir)
    return 0


COMMANDS = {"start": start, "stop": stop, "status": status, "env": env, "clean": clean}


def main(argv):
    if len(argv) not in (2, 3) or argv[1] not in COMMANDS:
        sys.stderr.write(__doc__)
        return 2
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = Paths(argv[2] if len(argv) == 3 else os.path.join(root, ".build", "postgresql"))
    if not re.match(r"^[^'\\\s]+$", paths.state_dir):
        # postgresql.conf quotes paths; keep them plain
        sys.stderr.write("postgresql: %s: use a folder without quotes, backslashes or spaces\n" % paths.state_dir)
        return 2
    clean_environment()
    try:
        return COMMANDS[argv[1]](paths)
    except HarnessError as error:
        sys.stderr.write("postgresql: %s\n" % error)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
