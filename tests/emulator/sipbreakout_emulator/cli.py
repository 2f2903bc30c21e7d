# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Command line: ``start``, ``serve``, ``stop``, ``show``, ``fault`` and ``reset``.

    python -m sipbreakout_emulator start --state-dir DIR --client demo-client:demo-secret [--ttl 3600] [--sandbox]
    python -m sipbreakout_emulator show --state-dir DIR
    python -m sipbreakout_emulator fault --state-dir DIR --unavailable 3 --latency-ms 200
    python -m sipbreakout_emulator reset --state-dir DIR
    python -m sipbreakout_emulator stop --state-dir DIR
"""

import argparse
import json
import logging
import os
import sys

from .admin_client import AdminClient, AdminClientError
from .files import LOG_FILE, info_path, read_info
from .process import EmulatorProcessError, is_emulator, spawn, stop_pid, wait_ready
from .state import DEFAULT_TOKEN_TTL, DEFAULT_TTL, ROUTING_SCOPE, Client, Config

LOG = logging.getLogger("sipbreakout_emulator")


def parse_client(value):
    """``ID:SECRET[:scope1,scope2]`` -> :class:`Client` (scopes default to call.routing:write)."""
    parts = value.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise argparse.ArgumentTypeError("expected ID:SECRET or ID:SECRET:SCOPE1,SCOPE2")
    scopes = [scope.strip() for scope in parts[2].split(",")] if len(parts) == 3 else [ROUTING_SCOPE]
    try:
        return Client(parts[0], parts[1], [scope for scope in scopes if scope])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _port(value):
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("a port is 0 (any free one) to 65535")
    return port


def _seconds(value):
    seconds = float(value)
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be greater than zero")
    return seconds


def _add_server_options(parser):
    parser.add_argument("--client", action="append", type=parse_client, default=[], metavar="ID:SECRET[:SCOPES]",
                        help="an OAuth client for the client-credentials grant; SCOPES is a comma-separated list "
                             "of allowed scopes (default %s); repeatable" % ROUTING_SCOPE)
    parser.add_argument("--ttl", type=_seconds, help="registration time to live in seconds (default 3600)")
    parser.add_argument("--token-ttl", type=_seconds, help="access token lifetime in seconds (default 3600)")
    parser.add_argument("--sandbox", action="store_true",
                        help="accept calls without authorization metadata, like the operator's sandbox")
    parser.add_argument("--grpc-port", type=_port, default=0, help="gRPC port (default: any free one)")
    parser.add_argument("--http-port", type=_port, default=0,
                        help="HTTPS port of the token endpoint and admin API (default: any free one)")
    parser.add_argument("--workers", type=int, help="gRPC worker threads (default 128)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def build_parser():
    """The argparse parser of all commands."""
    parser = argparse.ArgumentParser(prog="python -m sipbreakout_emulator",
                                     description="Offline emulator of the SIP breakout API (gRPC + OAuth + admin).")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run in the foreground, logging to stderr")
    serve.add_argument("--state-dir", required=True)
    _add_server_options(serve)
    # Used by start: clients (with secrets) arrive as JSON on stdin so they never show in the process list.
    serve.add_argument("--clients-stdin", action="store_true", help=argparse.SUPPRESS)
    # Used by the test helper: stop when the process that started us is gone.
    serve.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)

    start = commands.add_parser("start", help="start in the background and wait until it serves")
    start.add_argument("--state-dir", required=True)
    _add_server_options(start)
    start.add_argument("--timeout", type=_seconds, default=30.0, help="seconds to wait for readiness")
    start.add_argument("--json", action="store_true", help="print emulator.json without client secrets")

    stop = commands.add_parser("stop", help="stop the emulator started in the state directory")
    stop.add_argument("--state-dir", required=True)
    stop.add_argument("--timeout", type=_seconds, default=10.0, help="seconds to wait before SIGKILL")

    show = commands.add_parser("show", help="print the live registrations")
    show.add_argument("--state-dir", required=True)
    show.add_argument("--json", action="store_true", help="print the admin API's JSON instead of a table")

    fault = commands.add_parser("fault", help="inject faults into the running emulator (POST /admin/faults)")
    fault.add_argument("--state-dir", required=True)
    fault.add_argument("--unavailable", type=int, metavar="N", help="the next N gRPC calls answer UNAVAILABLE")
    fault.add_argument("--unavailable-for", type=float, metavar="S", help="gRPC calls answer UNAVAILABLE for S seconds")
    fault.add_argument("--latency-ms", type=float, metavar="MS", help="delay every gRPC call by MS milliseconds")
    fault.add_argument("--token-unavailable", type=int, metavar="N", help="the next N token requests answer 503")
    fault.add_argument("--max-in-flight", type=int, metavar="N",
                       help="gRPC calls beyond N at once answer RESOURCE_EXHAUSTED (0: no limit)")
    fault.add_argument("--token-ttl", type=_seconds, metavar="S", help="lifetime of tokens issued from now on")
    fault.add_argument("--ttl", type=_seconds, metavar="S", help="TTL of registrations upserted from now on")
    fault.add_argument("--revoke-tokens", action="store_true", help="invalidate every access token issued so far")
    fault.add_argument("--clear", action="store_true", help="clear faults first")

    reset = commands.add_parser("reset", help="clear registrations, counters and faults (POST /admin/reset)")
    reset.add_argument("--state-dir", required=True)
    return parser


def _running_info(state_dir):
    info = read_info(state_dir)
    if info and isinstance(info.get("pid"), int) and is_emulator(info["pid"]):
        return info
    return None


def cmd_serve(args):
    """Foreground server."""
    # Imported here: serve needs grpc and the collection, stop and show do not.
    from .server import Emulator  # pylint: disable=import-outside-toplevel

    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    clients = list(args.client)
    if args.clients_stdin:
        for item in json.loads(sys.stdin.read() or "[]"):
            clients.append(Client(item["client_id"], item["client_secret"], item.get("scopes", [ROUTING_SCOPE])))
    config = Config(ttl=args.ttl or DEFAULT_TTL, token_ttl=args.token_ttl or DEFAULT_TOKEN_TTL, sandbox=args.sandbox)
    kwargs = {"grpc_port": args.grpc_port, "http_port": args.http_port}
    if args.workers:
        kwargs["workers"] = args.workers
    emulator = Emulator(args.state_dir, config, clients, **kwargs)
    emulator.start()
    emulator.serve_forever(exit_with_parent=args.exit_with_parent)
    return 0


def cmd_start(args):
    """Background server: spawn ``serve``, wait until it answers, print where it is."""
    running = _running_info(args.state_dir)
    if running:
        print("an emulator is already running in %s (pid %d); stop it first" % (args.state_dir, running["pid"]),
              file=sys.stderr)
        return 1
    clients = [{"client_id": c.client_id, "client_secret": c.secret, "scopes": sorted(c.scopes)} for c in args.client]
    process = spawn(args.state_dir, clients, ttl=args.ttl, token_ttl=args.token_ttl, sandbox=args.sandbox,
                    grpc_port=args.grpc_port, http_port=args.http_port, workers=args.workers,
                    log_level=args.log_level)
    try:
        info = wait_ready(args.state_dir, process, args.timeout)
    except EmulatorProcessError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if args.json:
        public = dict(info)
        public["clients"] = [{"client_id": c["client_id"], "scopes": c["scopes"]} for c in info["clients"]]
        print(json.dumps(public, indent=2, sort_keys=True))
    else:
        print("emulator running, pid %d" % info["pid"])
        print("  gRPC endpoint   %s" % info["grpc_endpoint"])
        print("  token URL       %s" % info["token_url"])
        print("  admin URL       %s" % info["admin_url"])
        print("  CA certificate  %s" % info["ca_path"])
        print("  clients         %s" % (", ".join(c["client_id"] for c in info["clients"]) or "none"))
        print("  details         %s (secrets inside, mode 0600)" % info_path(args.state_dir))
        print("  log             %s" % os.path.join(os.path.abspath(args.state_dir), LOG_FILE))
    return 0


def cmd_stop(args):
    """Stop by the pid in emulator.json."""
    info = read_info(args.state_dir)
    if not info or not isinstance(info.get("pid"), int):
        print("no emulator is running in %s" % args.state_dir)
        return 0
    try:
        stopped = stop_pid(info["pid"], args.timeout)
    except EmulatorProcessError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    # After a clean stop the emulator removed the file itself; a stale one (crash, SIGKILL) goes now.
    if read_info(args.state_dir) == info:
        os.unlink(info_path(args.state_dir))
    print("emulator pid %d stopped" % info["pid"] if stopped else "no emulator was running (stale emulator.json removed)")
    return 0


def _format_ttl(seconds):
    if seconds >= 60:
        return "%dm%02ds" % (seconds // 60, seconds % 60)
    return "%.1fs" % seconds


def registration_table(registrations):
    """The registrations as a fixed-width text table."""
    header = ("PHONE NUMBER", "SIP URI", "ROUTE TYPE", "MO PREFIX", "MT PREFIX", "AUTH", "UPSERTS", "REMAINING TTL")
    rows = [header]
    for reg in registrations:
        rows.append((reg["phone_number"], reg["sip_uri"], reg["route_type"], reg["mobile_originating_prefix"] or "-",
                     reg["mobile_terminating_prefix"] or "-", reg["auth_kind"], str(reg["upserts"]),
                     _format_ttl(reg["remaining_ttl"])))
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def cmd_show(args):
    """Print what the running emulator holds."""
    info = _running_info(args.state_dir)
    if not info:
        print("no emulator is running in %s" % args.state_dir, file=sys.stderr)
        return 1
    admin = AdminClient(info)
    try:
        registrations = admin.get("registrations")
        calls = admin.get("calls?limit=0")
    except (AdminClientError, OSError) as exc:
        print("cannot reach the emulator's admin API: %s" % exc, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(registrations, indent=2, sort_keys=True))
        return 0
    print("emulator pid %d, gRPC %s, %d live registration(s)" % (info["pid"], info["grpc_endpoint"], len(registrations)))
    if registrations:
        print(registration_table(registrations))
    per_method = ", ".join("%s %s" % (method, " ".join("%s=%d" % item for item in sorted(entry["outcomes"].items())))
                           for method, entry in sorted(calls["by_method"].items()))
    print("calls: %d%s; token requests: %d" % (calls["total"], " (%s)" % per_method if per_method else "",
                                               calls["token_requests"]))
    return 0


def _admin_post(state_dir, path, payload):
    info = _running_info(state_dir)
    if not info:
        print("no emulator is running in %s" % state_dir, file=sys.stderr)
        return 1
    try:
        result = AdminClient(info).post(path, payload)
    except (AdminClientError, OSError) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def cmd_fault(args):
    """POST /admin/faults with the options given."""
    payload = {}
    for name in ("unavailable", "unavailable_for", "latency_ms", "token_unavailable", "token_ttl", "ttl",
                 "max_in_flight"):
        if getattr(args, name) is not None:
            payload[name] = getattr(args, name)
    for name in ("revoke_tokens", "clear"):
        if getattr(args, name):
            payload[name] = True
    return _admin_post(args.state_dir, "faults", payload)


def cmd_reset(args):
    """POST /admin/reset."""
    return _admin_post(args.state_dir, "reset", {})


def main(argv=None):
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    handlers = {"serve": cmd_serve, "start": cmd_start, "stop": cmd_stop, "show": cmd_show, "fault": cmd_fault,
                "reset": cmd_reset}
    return handlers[args.command](args)
