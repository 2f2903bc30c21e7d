# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start the emulator as a child process, wait until it serves, and stop it again by its pid."""

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time

from .admin_client import AdminClient, AdminClientError
from .files import LOG_FILE, read_info

PROCESS_MARKER = b"sipbreakout_emulator"


class EmulatorProcessError(Exception):
    """The emulator did not start or stop as asked."""


def package_root():
    """The folder that holds the ``sipbreakout_emulator`` package (``tests/emulator``)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_env():
    """This process's environment with PYTHONPATH reaching the emulator and ``ansible_collections``."""
    env = dict(os.environ)
    paths = [package_root()]
    spec = importlib.util.find_spec("ansible_collections")
    if spec is not None and spec.submodule_search_locations:
        paths.extend(os.path.dirname(location) for location in spec.submodule_search_locations)
    paths.extend(path for path in env.get("PYTHONPATH", "").split(os.pathsep) if path)
    merged = []
    for path in paths:
        if path not in merged:
            merged.append(path)
    env["PYTHONPATH"] = os.pathsep.join(merged)
    return env


def serve_command(state_dir, ttl=None, token_ttl=None, sandbox=False, grpc_port=0, http_port=0, workers=None,
                  log_level=None, exit_with_parent=False):
    """The argv of ``python -m sipbreakout_emulator serve``; clients go over stdin, never on the command line."""
    command = [sys.executable, "-m", "sipbreakout_emulator", "serve", "--state-dir", os.path.abspath(state_dir),
               "--clients-stdin", "--grpc-port", str(grpc_port), "--http-port", str(http_port)]
    if ttl is not None:
        command += ["--ttl", str(ttl)]
    if token_ttl is not None:
        command += ["--token-ttl", str(token_ttl)]
    if sandbox:
        command.append("--sandbox")
    if workers is not None:
        command += ["--workers", str(workers)]
    if log_level is not None:
        command += ["--log-level", log_level]
    if exit_with_parent:
        command.append("--exit-with-parent")
    return command


def _proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            # The state letter follows the command name, which is in parentheses and may hold spaces.
            return handle.read().rsplit(b")", 1)[1].split()[0].decode("ascii")
    except (OSError, IndexError):
        return None


def is_running(pid):
    """True if ``pid`` is alive (a zombie is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _proc_state(pid) not in ("Z", "X")


def is_emulator(pid):
    """True if ``pid`` is alive and is an emulator process, so a reused pid is never signalled."""
    if not is_running(pid):
        return False
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return PROCESS_MARKER in handle.read()
    except OSError:
        # No /proc: trust the pid file.
        return True


def spawn(state_dir, clients=(), **options):
    """Start ``serve`` in a new session with its output appended to ``STATE_DIR/emulator.log``; returns the Popen."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    log_path = os.path.join(state_dir, LOG_FILE)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        # A new session keeps a terminal's Ctrl-C aimed at the caller from reaching a daemon it left running.
        process = subprocess.Popen(  # pylint: disable=consider-using-with
            serve_command(state_dir, **options), stdin=subprocess.PIPE, stdout=log_fd, stderr=log_fd,
            env=child_env(), start_new_session=True, close_fds=True)
    finally:
        os.close(log_fd)
    try:
        process.stdin.write(json.dumps(list(clients)).encode("utf-8"))
        process.stdin.close()
    except BrokenPipeError:
        pass  # it died at once; wait_ready reports why
    return process


def _log_tail(state_dir, lines=30):
    try:
        with open(os.path.join(state_dir, LOG_FILE), "rb") as handle:
            return b"".join(handle.readlines()[-lines:]).decode("utf-8", "replace")
    except OSError:
        return ""


def _accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_ready(state_dir, process, timeout=30.0):
    """Wait until ``process`` has written ``emulator.json`` and both servers answer; return the file's content."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise EmulatorProcessError("the emulator exited with status %s while starting; its log ends with:\n%s"
                                       % (code, _log_tail(state_dir)))
        info = read_info(state_dir)
        if info and info.get("pid") == process.pid and _accepts(info["grpc_port"]) and _accepts(info["http_port"]):
            try:
                AdminClient(info, timeout=2.0).get("health")
            except (AdminClientError, OSError):
                pass
            else:
                return info
        time.sleep(0.05)
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
    raise EmulatorProcessError("the emulator did not become ready within %ss; its log ends with:\n%s"
                               % (timeout, _log_tail(state_dir)))


def stop_pid(pid, timeout=10.0):
    """SIGTERM the emulator ``pid`` and wait for it to end (SIGKILL after ``timeout``). False if it was not running."""
    if not is_emulator(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(pid):
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if is_running(pid):
        raise EmulatorProcessError("emulator pid %d did not end after SIGKILL" % pid)
    return True
