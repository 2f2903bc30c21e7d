# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real SIP traffic against the SIP breakout edge, for the molecule scenario's verify step.

Each command plays the peers of one exchange and prints what they saw as JSON on stdout; verify.yml asserts on
it. Nothing here decides whether the edge is right.

  core-call        the core (a TLS client, Python ssl) sends an INVITE to the edge; optionally a SIPp UAS plays
                   the backend PBX and answers it, and the core acknowledges and hangs up through the edge. With
                   --hold-until FILE the call stays up, on the same TLS connection, until FILE exists (the test
                   changes the edge meanwhile); --answered FILE is written once the INVITE has its final response.
  tls-certificate  the certificate the edge's TLS listener presents.
  backend-call     a SIPp UAC plays the backend PBX and sends an INVITE to the edge; a TLS server (Python ssl)
                   plays the core at sipbreakout_core_uri, answers it and takes the ACK and BYE.
"""

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

TIMEOUT = 10.0
SDP = (
    "v=0\r\n"
    "o=core 1 1 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
)


# ---------------------------------------------------------------------------------------------------------------
# SIP messages over a stream


class Message(object):
    def __init__(self, first_line, headers, body):
        self.first_line = first_line
        self.headers = headers  # list of (name, value) in order
        self.body = body

    @property
    def is_response(self):
        return self.first_line.startswith("SIP/2.0 ")

    @property
    def status(self):
        return int(self.first_line.split(" ", 2)[1]) if self.is_response else None

    @property
    def reason(self):
        return self.first_line.split(" ", 2)[2] if self.is_response else None

    @property
    def method(self):
        return None if self.is_response else self.first_line.split(" ", 1)[0]

    def all(self, name):
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def get(self, name):
        values = self.all(name)
        return values[0] if values else None

    def as_dict(self):
        values = {}
        for key, value in self.headers:
            values.setdefault(key.lower(), []).append(value)
        return dict(first_line=self.first_line, headers=[[key, value] for key, value in self.headers],
                    header_values=values, body=self.body)


def parse_message(text):
    head, _sep, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
            continue
        name, _sep, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return Message(lines[0], headers, body)


def read_message(stream):
    """One SIP message from a buffered binary stream (keepalive CRLFs skipped); None at end of stream."""
    lines = []
    while True:
        line = stream.readline()
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            if lines:
                break
            continue
        lines.append(line.decode("utf-8").rstrip("\r\n"))
    message = parse_message("\r\n".join(lines) + "\r\n\r\n")
    length = int(message.get("Content-Length") or message.get("l") or 0)
    message.body = stream.read(length).decode("utf-8") if length else ""
    return message


def build(first_line, headers, body=""):
    lines = [first_line] + ["%s: %s" % (name, value) for name, value in headers]
    lines.append("Content-Length: %d" % len(body.encode("utf-8")))
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")


def split_header_list(value):
    """Split a comma-separated header value (Record-Route, Route) at commas outside <...>."""
    parts, depth, current = [], 0, ""
    for char in value:
        if char == "<":
            depth += 1
        elif char == ">":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


def uri_of(name_addr):
    match = re.search(r"<([^>]+)>", name_addr)
    return match.group(1) if match else name_addr.split(";")[0].strip()


def branch():
    return "z9hG4bK" + secrets.token_hex(8)


# ---------------------------------------------------------------------------------------------------------------
# SIPp


def sipp_command(args, scenario, extra):
    # A held call keeps SIPp waiting for the BYE as long as the call is held.
    timeout = TIMEOUT * 2 + (getattr(args, "hold_timeout", 0) if getattr(args, "hold_until", None) else 0)
    return [args.sipp, "-sf", scenario, "-t", "u1", "-m", "1", "-nostdin", "-aa",
            "-timeout", str(int(timeout)), "-timeout_error",
            "-trace_msg", "-message_file", os.path.join(args.workdir, os.path.basename(scenario) + ".messages.log"),
            "-trace_err", "-error_file", os.path.join(args.workdir, os.path.basename(scenario) + ".errors.log"),
            ] + extra


def sipp_messages(args, scenario):
    """The messages SIPp logged, each as (direction, Message)."""
    path = os.path.join(args.workdir, os.path.basename(scenario) + ".messages.log")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    result = []
    # Each entry: a dashed line with a timestamp, "UDP message received [N] bytes :" or "... sent ...", a blank
    # line, then the message.
    for block in re.split(r"^-{10,}.*$", text, flags=re.MULTILINE):
        match = re.match(r"\s*(\w+) message (received|sent) \[\d+\] bytes :\s*\n\n(.*)", block, re.DOTALL)
        if not match:
            continue
        raw = match.group(3).strip("\n").replace("\r\n", "\n").replace("\n", "\r\n")
        result.append((match.group(2), parse_message(raw + "\r\n\r\n")))
    return result


def prepare_scenario(args, name, replacements):
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    target = os.path.join(args.workdir, name)
    with open(source, encoding="utf-8") as handle:
        text = handle.read()
    for key, value in replacements.items():
        text = text.replace(key, value)
    with open(target, "w", encoding="utf-8") as handle:
        handle.write(text)
    return target


def start_sipp(args, scenario, extra):
    log = open(os.path.join(args.workdir, os.path.basename(scenario) + ".out"), "wb")
    process = subprocess.Popen(sipp_command(args, scenario, extra), stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT, cwd=args.workdir)
    process.log = log
    return process


def finish_sipp(process, timeout):
    try:
        rc = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        rc = process.wait()
    process.log.close()
    return rc


def wait_udp_bound(port, timeout=5.0):
    """Wait until something listens on UDP port (SIPp binds a moment after it starts)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
        finally:
            probe.close()
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------------------------------------------
# core-call


def tls_client(args):
    context = ssl.create_default_context(cafile=args.ca)
    context.check_hostname = True
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.settimeout(TIMEOUT)
    raw.bind((args.source, 0))
    host, port = args.edge.rsplit(":", 1)
    raw.connect((host, int(port)))
    return context.wrap_socket(raw, server_hostname=args.server_name)


def served_certificate(connection):
    der = connection.getpeercert(binary_form=True)
    names = [value for kind, value in connection.getpeercert().get("subjectAltName", ())]
    return dict(sha256_fingerprint=hashlib.sha256(der).hexdigest(), names=names, tls_version=connection.version())


def core_call(args):
    result = dict(certificate=None, responses=[], final=None, ack_sent=False, bye=None, backend=None, error=None)
    backend = None
    if args.backend_port:
        scenario = prepare_scenario(args, "backend-uas.xml", {"@DIRECTION_HEADER@": args.direction_header})
        backend = start_sipp(args, scenario, ["-i", "127.0.0.1", "-p", str(args.backend_port)])
        if not wait_udp_bound(args.backend_port):
            result["error"] = "SIPp did not bind UDP port %d" % args.backend_port
    try:
        connection = tls_client(args)
        result["certificate"] = served_certificate(connection)
        stream = connection.makefile("rb")
        local_host, local_port = connection.getsockname()[:2]
        user = args.number
        call_id = secrets.token_hex(10) + "@core.sipbreakout.test"
        from_header = "<sip:+4711122233@core.sipbreakout.test>;tag=%s" % secrets.token_hex(6)
        to_header = "<sip:%s@%s>" % (user, args.server_name)
        common = [
            ("Max-Forwards", "70"),
            ("From", from_header),
            ("Call-ID", call_id),
        ]
        invite_headers = [
            ("Via", "SIP/2.0/TLS %s:%d;branch=%s;rport" % (local_host, local_port, branch())),
            ("To", to_header),
            ("CSeq", "1 INVITE"),
            ("Contact", "<sip:core@%s:%d;transport=tls>" % (local_host, local_port)),
            ("Session-ID", args.session_id),
            # The edge must replace whatever the sender claims.
            (args.direction_header, "spoofed"),
            ("Content-Type", "application/sdp"),
        ] + common
        request_uri = "sip:%s@%s" % (user, args.edge_uri_host)
        connection.sendall(build("INVITE %s SIP/2.0" % request_uri, invite_headers, SDP))
        while True:
            response = read_message(stream)
            if response is None:
                result["error"] = "the edge closed the connection before a final response"
                break
            result["responses"].append("%d %s" % (response.status, response.reason))
            if response.status >= 200:
                result["final"] = response.as_dict()
                break
        final = parse_message_dict(result["final"]) if result["final"] else None
        if final is not None and 200 <= final.status < 300:
            routes = []
            for value in final.all("Record-Route"):
                routes.extend(split_header_list(value))
            routes.reverse()
            target = uri_of(final.get("Contact"))
            to_tagged = final.get("To")
            dialog = [("Route", route) for route in routes] + [("To", to_tagged)] + common
            connection.sendall(build("ACK %s SIP/2.0" % target, [
                ("Via", "SIP/2.0/TLS %s:%d;branch=%s;rport" % (local_host, local_port, branch())),
                ("CSeq", "1 ACK")] + dialog))
            result["ack_sent"] = True
            mark(args.answered)
            if args.hold_until:
                result["held_seconds"] = hold(args.hold_until, args.hold_timeout)
                if result["held_seconds"] is None:
                    result["error"] = "%s did not appear within %d s; hung up anyway" % (
                        args.hold_until, args.hold_timeout)
            connection.sendall(build("BYE %s SIP/2.0" % target, [
                ("Via", "SIP/2.0/TLS %s:%d;branch=%s;rport" % (local_host, local_port, branch())),
                ("CSeq", "2 BYE")] + dialog))
            while True:
                response = read_message(stream)
                if response is None:
                    result["error"] = "the edge closed the connection before the BYE was answered"
                    break
                if response.status >= 200:
                    result["bye"] = "%d %s" % (response.status, response.reason)
                    break
        connection.close()
    except (OSError, ssl.SSLError) as exc:
        result["error"] = "%s: %s" % (type(exc).__name__, exc)
    # Whatever happened: whoever waits for the answer must not wait in vain.
    mark(args.answered)
    if backend is not None:
        if result["final"] is None or not result["final"]["first_line"].startswith("SIP/2.0 2"):
            # No call reached the backend (as expected for a rejection): stop it.
            time.sleep(0.5)
            backend.terminate()
        rc = finish_sipp(backend, TIMEOUT)
        received = [message.as_dict() for direction, message in sipp_messages(args, "backend-uas.xml")
                    if direction == "received" and message.method]
        result["backend"] = dict(sipp_rc=rc, requests=received)
    return result


def mark(path):
    if path and not os.path.exists(path):
        with open(path, "w", encoding="utf-8"):
            pass


def hold(path, timeout):
    """Wait until ``path`` exists; the seconds waited, or None after ``timeout`` seconds."""
    started = time.time()
    while time.time() - started < timeout:
        if os.path.exists(path):
            return round(time.time() - started, 1)
        time.sleep(0.1)
    return None


def parse_message_dict(data):
    return Message(data["first_line"], [tuple(pair) for pair in data["headers"]], data["body"])


# ---------------------------------------------------------------------------------------------------------------
# tls-certificate


def tls_certificate(args):
    connection = tls_client(args)
    try:
        return served_certificate(connection)
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------------------------------
# backend-call


class CoreStandIn(threading.Thread):
    """A TLS server playing the core at sipbreakout_core_uri: answers one INVITE, takes the ACK and the BYE."""

    def __init__(self, args):
        super().__init__(daemon=True)
        self.args = args
        self.seen = dict(sni=[], client_certificates=[], requests=[], error=None)
        self.done = threading.Event()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.core_certificate, args.core_private_key)
        # Ask for the edge's certificate (optional) so that the test can show which one it presents.
        context.load_verify_locations(args.ca)
        context.verify_mode = ssl.CERT_OPTIONAL
        context.sni_callback = self._sni
        self.context = context
        host, port = args.core_listen.rsplit(":", 1)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, int(port)))
        self.listener.listen(4)
        self.listener.settimeout(TIMEOUT * 2)

    def _sni(self, _connection, server_name, _context):
        self.seen["sni"].append(server_name)

    def run(self):
        try:
            raw, _address = self.listener.accept()
            raw.settimeout(TIMEOUT)
            connection = self.context.wrap_socket(raw, server_side=True)
            der = connection.getpeercert(binary_form=True)
            if der:
                self.seen["client_certificates"].append(hashlib.sha256(der).hexdigest())
            stream = connection.makefile("rb")
            to_tag = secrets.token_hex(6)
            while True:
                request = read_message(stream)
                if request is None:
                    break
                self.seen["requests"].append(request.as_dict())
                if request.method == "INVITE":
                    connection.sendall(self._response(request, "100 Trying", None))
                    connection.sendall(self._response(request, "200 OK", to_tag, SDP))
                elif request.method == "BYE":
                    connection.sendall(self._response(request, "200 OK", None))
                    break
        except (OSError, ssl.SSLError) as exc:
            self.seen["error"] = "%s: %s" % (type(exc).__name__, exc)
        finally:
            self.listener.close()
            self.done.set()

    def _response(self, request, status, to_tag, body=""):
        headers = [("Via", via) for via in request.all("Via")]
        headers += [("Record-Route", value) for value in request.all("Record-Route")]
        headers += [("From", request.get("From")),
                    ("To", request.get("To") + (";tag=%s" % to_tag if to_tag else "")),
                    ("Call-ID", request.get("Call-ID")),
                    ("CSeq", request.get("CSeq"))]
        if body:
            host, port = self.args.core_listen.rsplit(":", 1)
            headers += [("Contact", "<sip:core@%s:%s;transport=tls>" % (host, port)),
                        ("Content-Type", "application/sdp")]
        return build("SIP/2.0 " + status, headers, body)


def backend_call(args):
    core = CoreStandIn(args)
    core.start()
    scenario = prepare_scenario(args, "backend-uac.xml", {})
    backend = start_sipp(args, scenario, [
        "-i", "127.0.0.1", "-p", str(args.backend_port), "-s", args.number,
        "-key", "session_id", args.session_id, args.edge_backend_side])
    rc = finish_sipp(backend, TIMEOUT * 3)
    core.done.wait(TIMEOUT)
    received = [message.as_dict() for direction, message in sipp_messages(args, "backend-uac.xml")
                if direction == "received"]
    return dict(sipp_rc=rc, backend_received=[entry["first_line"] for entry in received], core=core.seen)


# ---------------------------------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="where SIPp scenarios and logs go")
    parser.add_argument("--sipp", default=shutil.which("sipp") or "sipp")
    commands = parser.add_subparsers(dest="command", required=True)

    def tls_options(command):
        command.add_argument("--edge", required=True, help="the edge's TLS listener, ADDRESS:PORT")
        command.add_argument("--source", default="127.0.0.1", help="source address of the TLS client")
        command.add_argument("--server-name", required=True, help="name the certificate must cover (SNI)")
        command.add_argument("--ca", required=True, help="CA file that verifies the edge's certificate")

    core = commands.add_parser("core-call")
    tls_options(core)
    core.add_argument("--number", required=True, help="request-URI user as the core sends it")
    core.add_argument("--edge-uri-host", required=True, help="host[:port] of the request-URI")
    core.add_argument("--session-id", default=secrets.token_hex(16) + ";remote=" + "0" * 32)
    core.add_argument("--direction-header", default="X-Sipbreakout-Direction")
    core.add_argument("--backend-port", type=int, help="run a SIPp UAS as the backend on this UDP port")
    core.add_argument("--answered", help="file to create once the INVITE has its final response")
    core.add_argument("--hold-until", help="after the ACK, send the BYE only once this file exists")
    core.add_argument("--hold-timeout", type=int, default=300, help="seconds to wait for --hold-until")

    certificate = commands.add_parser("tls-certificate")
    tls_options(certificate)

    backend = commands.add_parser("backend-call")
    backend.add_argument("--edge-backend-side", required=True, help="the edge's backend listener, ADDRESS:PORT")
    backend.add_argument("--backend-port", type=int, required=True, help="UDP port SIPp sends from")
    backend.add_argument("--number", required=True)
    backend.add_argument("--session-id", default=secrets.token_hex(16) + ";remote=" + secrets.token_hex(16))
    backend.add_argument("--core-listen", required=True, help="ADDRESS:PORT of the core stand-in")
    backend.add_argument("--core-certificate", required=True)
    backend.add_argument("--core-private-key", required=True)
    backend.add_argument("--ca", required=True, help="CA file that verifies the edge's client certificate")

    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    handlers = {"core-call": core_call, "tls-certificate": tls_certificate, "backend-call": backend_call}
    result = handlers[args.command](args)
    if "session_id" in args:
        result["session_id_sent"] = args.session_id
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
