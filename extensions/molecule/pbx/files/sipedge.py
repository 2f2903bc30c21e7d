# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real SIP traffic against the SIP breakout edge, for the molecule scenario's verify step.

Each command plays the peers of one exchange and prints what they saw as JSON on stdout; verify.yml asserts on
it. Nothing here decides whether the edge is right.

  core-call        the core (a TLS client, Python ssl, presenting --certificate) sends an INVITE with a sips:
                   request-URI to the edge. The backend PBX that answers is SIPp (--backend-port with
                   --backend-scenario) or Debian's baresip (--ua), a user agent with its own RFC 3263 routing of
                   in-dialog requests. Once answered, --steps run in order: core-reinvite, core-update, core-info,
                   core-bye (requests the core sends through the edge), ua-reinvite, ua-bye (requests baresip sends,
                   told over its ctrl_tcp socket), await-METHOD (until a METHOD request from the backend has reached
                   the core, as SIPp's INFO and UPDATE do). The core answers whatever comes to it (200 OK). With
                   --hold-until FILE the call stays up, on the same TLS connection, until FILE exists (the test
                   changes the edge meanwhile); --answered FILE is written once the INVITE has its final response.
                   --watch-port PORT records anything sent to that UDP port (a backend that must get nothing).
  core-cancel      the core sends a CANCEL that matches no transaction.
  tls-certificate  the certificate the edge's TLS listener presents.
  backend-call     a SIPp UAC plays the backend PBX and sends an INVITE to the edge; a TLS server (Python ssl)
                   plays the core at sipbreakout_core_uri, answers it and takes the ACK and BYE.
  backend-invite   a UDP client plays the backend PBX and sends one INVITE to the edge; it records every response
                   and when it came, and acknowledges the final ones. --core-listen runs a core stand-in with
                   --core-certificate, --silent-listen a TCP listener that accepts and never speaks (a core address
                   that does not answer).
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
import wave

TIMEOUT = 10.0
SDP = (
    "v=0\r\n"
    "o=core 1 %d IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
)
CORE_STEPS = ("core-reinvite", "core-update", "core-info", "core-bye")
UA_STEPS = ("ua-reinvite", "ua-bye")


def sdp(version=1):
    return SDP % version


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

    @property
    def status_line(self):
        return "%d %s" % (self.status, self.reason)

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


def record_routes(message):
    routes = []
    for value in message.all("Record-Route"):
        routes.extend(split_header_list(value))
    return routes


def uri_of(name_addr):
    match = re.search(r"<([^>]+)>", name_addr)
    return match.group(1) if match else name_addr.split(";")[0].strip()


def branch():
    return "z9hG4bK" + secrets.token_hex(8)


def response_to(request, status, extra=(), body=""):
    """A response to ``request``, which must carry a To tag (in-dialog) or gets ``extra`` with one."""
    headers = [("Via", via) for via in request.all("Via")]
    headers += [("From", request.get("From")), ("To", request.get("To")), ("Call-ID", request.get("Call-ID")),
                ("CSeq", request.get("CSeq"))]
    headers += list(extra)
    return build("SIP/2.0 " + status, headers, body)


def mark(path):
    if path and not os.path.exists(path):
        with open(path, "w", encoding="utf-8"):
            pass


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
    for suffix in (".messages.log", ".errors.log"):
        path = os.path.join(args.workdir, os.path.basename(scenario) + suffix)
        if os.path.exists(path):
            os.unlink(path)
    log = open(os.path.join(args.workdir, os.path.basename(scenario) + ".out"), "wb")
    process = subprocess.Popen(sipp_command(args, scenario, extra), stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT, cwd=args.workdir)
    process.log = log
    return process


def finish_process(process, timeout):
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


class SippBackend(object):
    """SIPp as the backend PBX: a UAS scenario on a UDP port."""

    def __init__(self, args):
        self.args = args
        self.scenario = prepare_scenario(args, args.backend_scenario,
                                         {"@DIRECTION_HEADER@": args.direction_header})
        self.process = start_sipp(args, self.scenario, ["-i", "127.0.0.1", "-p", str(args.backend_port)])
        self.error = None if wait_udp_bound(args.backend_port) else (
            "SIPp did not bind UDP port %d" % args.backend_port)

    def finish(self, answered):
        if not answered:
            # No call reached the backend (as expected for a rejection): stop it.
            time.sleep(0.5)
            self.process.terminate()
        rc = finish_process(self.process, TIMEOUT)
        messages = sipp_messages(self.args, self.scenario)
        return dict(sipp_rc=rc,
                    requests=[message.as_dict() for direction, message in messages
                              if direction == "received" and message.method])


# ---------------------------------------------------------------------------------------------------------------
# baresip


class Baresip(object):
    """Debian's baresip as the backend PBX: answers calls to --number at once, takes commands on its ctrl_tcp
    socket (netstring JSON) and traces every SIP message it sends or receives (-s)."""

    def __init__(self, args):
        self.args = args
        self.directory = os.path.join(args.workdir, "baresip")
        os.makedirs(self.directory, exist_ok=True)
        self.address = "127.0.0.1:%d" % args.backend_port
        self.ctrl_port = args.ua_ctrl_port
        # baresip hangs up when its audio file ends: two minutes of 8 kHz silence outlast any call here.
        audio = os.path.join(self.directory, "silence.wav")
        if not os.path.exists(audio):
            with wave.open(audio, "wb") as handle:
                handle.setnchannels(1)
                handle.setsampwidth(2)
                handle.setframerate(8000)
                handle.writeframes(b"\0\0" * 8000 * 120)
        with open(os.path.join(self.directory, "config"), "w", encoding="utf-8") as handle:
            handle.write("\n".join([
                "poll_method epoll",
                "sip_listen %s" % self.address,
                "net_interface 127.0.0.1",
                "call_local_timeout 30",
                # An 8 kHz PCM file is all the audio there is: the test looks at signalling only.
                "audio_source aufile,%s" % audio,
                "audio_player aufile,/dev/null",
                "audio_alert aufile,/dev/null",
                "module_path /usr/lib/baresip/modules",
                "module g711.so",
                "module aufile.so",
                "module ctrl_tcp.so",
                "module_app account.so",
                "module_app menu.so",
                "ctrl_tcp_listen 127.0.0.1:%d" % self.ctrl_port,
                ""]))
        with open(os.path.join(self.directory, "accounts"), "w", encoding="utf-8") as handle:
            # The user part of the request-URI the edge sends picks the account.
            handle.write("<sip:%s@127.0.0.1>;answermode=auto;regint=0;audio_codecs=pcmu\n" % args.ua_user)
        self.log_path = os.path.join(self.directory, "baresip.log")
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(["baresip", "-f", self.directory, "-s"], stdin=subprocess.DEVNULL,
                                        stdout=self.log, stderr=subprocess.STDOUT, cwd=self.directory)
        self.process.log = self.log
        self.events = []
        self.error = None
        self.control = None
        deadline = time.time() + 5
        while time.time() < deadline and self.control is None:
            try:
                self.control = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
            except OSError:
                time.sleep(0.1)
        if self.control is None:
            self.error = "baresip did not open its ctrl_tcp socket on port %d" % self.ctrl_port
            return
        self.reader = threading.Thread(target=self._read_events, daemon=True)
        self.reader.start()

    def _read_events(self):
        buffer = b""
        self.control.settimeout(None)
        while True:
            try:
                data = self.control.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while b":" in buffer:
                length, _sep, rest = buffer.partition(b":")
                if not length.isdigit() or len(rest) < int(length) + 1:
                    break
                self.events.append(json.loads(rest[:int(length)].decode("utf-8")))
                buffer = rest[int(length) + 1:]

    def command(self, name):
        payload = json.dumps(dict(command=name, params="", token=name)).encode("utf-8")
        self.control.sendall(b"%d:%s," % (len(payload), payload))

    def wait_event(self, kind, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(event.get("type") == kind for event in self.events):
                return True
            time.sleep(0.05)
        return False

    def finish(self, answered):
        if self.control is not None:
            self.command("quit")
        rc = finish_process(self.process, TIMEOUT)
        return dict(rc=rc, events=[event.get("type") for event in self.events if event.get("event")],
                    closed=[event.get("param") for event in self.events if event.get("type") == "CALL_CLOSED"],
                    **self.trace())

    def trace(self):
        """The SIP messages baresip traced: what it received and what it sent, with transport and addresses."""
        with open(self.log_path, "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
        received, sent = [], []
        for match in re.finditer(r"#\n(UDP|TCP|TLS) (\S+) -> (\S+)\n(.*?)\x1b\[;m", text, re.DOTALL):
            transport, source, destination, raw = match.groups()
            raw = raw.replace("\r\n", "\n").strip("\n").replace("\n", "\r\n")
            head, _sep, body = raw.partition("\r\n\r\n")
            entry = parse_message(head + "\r\n\r\n").as_dict()
            entry.update(transport=transport, source=source, destination=destination)
            (received if destination == self.address else sent).append(entry)
        return dict(received=received, sent=sent)


class Watcher(threading.Thread):
    """Records whatever arrives at a UDP port (a backend that must not be sent anything)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", port))
        self.socket.settimeout(0.2)
        self.received = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                data, _address = self.socket.recvfrom(65535)
            except socket.timeout:
                continue
            self.received.append(data.decode("utf-8", "replace").split("\r\n", 1)[0])
        self.socket.close()

    def finish(self):
        self.stop.set()
        self.join()
        return self.received


# ---------------------------------------------------------------------------------------------------------------
# core-call


def tls_client(args):
    context = ssl.create_default_context(cafile=args.ca)
    context.check_hostname = True
    if getattr(args, "certificate", None):
        context.load_cert_chain(args.certificate, args.private_key)
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


class CoreLeg(object):
    """The core's side of one call over its TLS connection to the edge. One thread does all the reading and writing
    (an SSL connection must not be read and written from two threads at once): while it waits for a response or a
    request it answers every request the edge brings (200 OK, with SDP to a re-INVITE)."""

    def __init__(self, connection, args):
        self.connection = connection
        self.buffer = b""
        self.host, self.port = connection.getsockname()[:2]
        self.contact = "<sips:core@%s:%d>" % (self.host, self.port)
        self.responses = []
        self.received = []  # requests that reached the core, as dicts
        self.closed = False
        self.call_id = secrets.token_hex(10) + "@core.sipbreakout.test"
        self.from_header = "<sip:+4711122233@core.sipbreakout.test>;tag=%s" % secrets.token_hex(6)
        self.to_header = "<sips:%s@%s>" % (args.number, args.server_name)
        self.cseq = 1
        self.route = []
        self.target = None
        self.sdp_version = 1

    def send(self, data):
        self.connection.sendall(data)

    def pump(self, timeout):
        """Read for at most ``timeout`` seconds and handle every whole message read."""
        if self.closed:
            time.sleep(timeout)
            return
        self.connection.settimeout(max(timeout, 0.01))
        try:
            data = self.connection.recv(65536)
        except socket.timeout:
            return
        except (OSError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return
        self.buffer += data
        while True:
            # CRLF keepalives between messages
            self.buffer = self.buffer.lstrip(b"\r\n")
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            message = parse_message(self.buffer[:end].decode("utf-8") + "\r\n\r\n")
            length = int(message.get("Content-Length") or message.get("l") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            message.body = self.buffer[end + 4:end + 4 + length].decode("utf-8")
            self.buffer = self.buffer[end + 4 + length:]
            self._handle(message)

    def _handle(self, message):
        if message.is_response:
            self.responses.append(message)
            return
        self.received.append(message.as_dict())
        if message.method == "ACK":
            return
        extra, body = [], ""
        if message.method == "INVITE":
            self.sdp_version += 1
            extra = [("Contact", self.contact), ("Content-Type", "application/sdp")]
            body = sdp(self.sdp_version)
        self.send(response_to(message, "200 OK", extra, body))

    def next_response(self, timeout):
        deadline = time.time() + timeout
        while not self.responses and time.time() < deadline and not self.closed:
            self.pump(min(0.2, deadline - time.time()))
        return self.responses.pop(0) if self.responses else None

    def wait_request(self, method, count, timeout):
        """Wait until ``count`` requests of ``method`` have reached the core; the last one, or None."""
        deadline = time.time() + timeout
        while True:
            seen = [entry for entry in self.received if entry["first_line"].startswith(method + " ")]
            if len(seen) >= count:
                return seen[-1]
            if time.time() >= deadline or self.closed:
                return None
            self.pump(min(0.2, deadline - time.time()))

    def hold(self, path, timeout):
        """Keep the call up (answering what comes) until ``path`` exists; the seconds held, or None."""
        started = time.time()
        while time.time() - started < timeout:
            if os.path.exists(path):
                return round(time.time() - started, 1)
            self.pump(0.1)
        return None

    def via(self):
        return ("Via", "SIP/2.0/TLS %s:%d;branch=%s;rport" % (self.host, self.port, branch()))

    def common(self):
        return [("Max-Forwards", "70"), ("From", self.from_header), ("To", self.to_header),
                ("Call-ID", self.call_id)]

    def request(self, method, headers, body=""):
        """Send an in-dialog request (not ACK) and wait for its final response; the responses' status lines."""
        self.cseq += 1
        self.send(build("%s %s SIP/2.0" % (method, self.target), [self.via()] + self.dialog_headers()
                        + [("CSeq", "%d %s" % (self.cseq, method))] + headers, body))
        seen = []
        while True:
            response = self.next_response(TIMEOUT)
            if response is None:
                seen.append("no final response")
                return seen, None
            if response.get("CSeq") != "%d %s" % (self.cseq, method):
                continue
            seen.append(response.status_line)
            if response.status >= 200:
                return seen, response

    def dialog_headers(self):
        return [("Route", route) for route in self.route] + self.common()

    def ack(self, cseq):
        self.send(build("ACK %s SIP/2.0" % self.target, [self.via()] + self.dialog_headers()
                        + [("CSeq", "%d ACK" % cseq)]))


def start_backend(args):
    if args.ua:
        return Baresip(args)
    if args.backend_port:
        return SippBackend(args)
    return None


def core_call(args):
    result = dict(certificate=None, responses=[], final=None, ack_sent=False, bye=None, steps=[], backend=None,
                  core_received=[], watched=None, error=None)
    watcher = Watcher(args.watch_port) if args.watch_port else None
    if watcher:
        watcher.start()
    backend = start_backend(args)
    if backend is not None and backend.error:
        result["error"] = backend.error
    answered = False
    try:
        connection = tls_client(args)
        result["certificate"] = served_certificate(connection)
        leg = CoreLeg(connection, args)
        invite_headers = [
            leg.via(),
            ("CSeq", "1 INVITE"),
            ("Contact", leg.contact),
            ("Session-ID", args.session_id),
            # The edge must replace whatever the sender claims.
            (args.direction_header, "spoofed"),
            ("Content-Type", "application/sdp"),
        ] + leg.common()
        # The core's request-URI is the registration's sips: URI with the prefixed number as the user part.
        leg.send(build("INVITE sips:%s@%s SIP/2.0" % (args.number, args.edge_uri_host), invite_headers, sdp()))
        started = time.time()
        while True:
            response = leg.next_response(args.answer_timeout)
            if response is None:
                result["error"] = "no final response to the INVITE"
                break
            result["responses"].append(response.status_line)
            if response.status >= 200:
                result["final"] = response.as_dict()
                result["final_after"] = round(time.time() - started, 2)
                break
        final = parse_message_dict(result["final"]) if result["final"] else None
        if final is not None and 200 <= final.status < 300:
            answered = True
            leg.route = list(reversed(record_routes(final)))
            leg.target = uri_of(final.get("Contact"))
            leg.to_header = final.get("To")
            leg.ack(1)
            result["ack_sent"] = True
            mark(args.answered)
            if args.hold_until:
                result["held_seconds"] = leg.hold(args.hold_until, args.hold_timeout)
                if result["held_seconds"] is None:
                    result["error"] = "%s did not appear within %d s; hung up anyway" % (
                        args.hold_until, args.hold_timeout)
            for step in args.steps.split(","):
                outcome = run_step(step, leg, backend)
                result["steps"].append(dict(step=step, **outcome))
                if step == "core-bye":
                    result["bye"] = outcome.get("final")
        result["core_received"] = [entry["first_line"] for entry in leg.received]
        connection.close()
    except (OSError, ssl.SSLError) as exc:
        result["error"] = "%s: %s" % (type(exc).__name__, exc)
    # Whatever happened: whoever waits for the answer must not wait in vain.
    mark(args.answered)
    if backend is not None:
        result["backend"] = backend.finish(answered)
    if watcher:
        result["watched"] = watcher.finish()
    return result


def run_step(step, leg, backend):
    """One request in the call, by the core or by baresip; what came of it."""
    if step in CORE_STEPS:
        method = step.split("-", 1)[1].upper()
        if method == "REINVITE":
            leg.sdp_version += 1
            seen, response = leg.request("INVITE", [("Contact", leg.contact), ("Content-Type", "application/sdp")],
                                         sdp(leg.sdp_version))
            if response is not None and response.status < 300:
                leg.ack(leg.cseq)
        elif method == "INFO":
            seen, response = leg.request("INFO", [("Content-Type", "application/dtmf-relay")],
                                         "Signal=5\r\nDuration=160\r\n")
        else:
            seen, response = leg.request(method, [])
        return dict(responses=seen, final=seen[-1] if seen else None)
    if step.startswith("await-"):
        method = step.split("-", 1)[1].upper()
        request = leg.wait_request(method, 1, TIMEOUT)
        return dict(core_received=request["first_line"] if request else None)
    if step in UA_STEPS and isinstance(backend, Baresip):
        method = "INVITE" if step == "ua-reinvite" else "BYE"
        counts = dict((name, len([entry for entry in leg.received if entry["first_line"].startswith(name + " ")]))
                      for name in (method, "ACK"))
        backend.command("reinvite" if step == "ua-reinvite" else "hangup")
        request = leg.wait_request(method, counts[method] + 1, TIMEOUT)
        outcome = dict(core_received=request["first_line"] if request else None,
                       route=request["header_values"].get("route", []) if request else [])
        if method == "INVITE" and request is not None:
            # baresip acknowledges the core's 200 OK through the edge too.
            outcome["ack"] = leg.wait_request("ACK", counts["ACK"] + 1, TIMEOUT) is not None
        return outcome
    return dict(error="unknown step %s" % step)


def parse_message_dict(data):
    return Message(data["first_line"], [tuple(pair) for pair in data["headers"]], data["body"])


# ---------------------------------------------------------------------------------------------------------------
# core-cancel


def core_cancel(args):
    connection = tls_client(args)
    try:
        host, port = connection.getsockname()[:2]
        uri = "sips:%s@%s" % (args.number, args.edge_uri_host)
        connection.sendall(build("CANCEL %s SIP/2.0" % uri, [
            ("Via", "SIP/2.0/TLS %s:%d;branch=%s;rport" % (host, port, branch())),
            ("Max-Forwards", "70"),
            ("From", "<sip:+4711122233@core.sipbreakout.test>;tag=%s" % secrets.token_hex(6)),
            ("To", "<%s>" % uri),
            ("Call-ID", secrets.token_hex(10) + "@core.sipbreakout.test"),
            ("CSeq", "1 CANCEL")]))
        response = read_message(connection.makefile("rb"))
        return dict(responses=[response.status_line] if response else [])
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------------------------------
# tls-certificate


def tls_certificate(args):
    connection = tls_client(args)
    try:
        return served_certificate(connection)
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------------------------------
# backend-call, backend-invite


class CoreStandIn(threading.Thread):
    """A TLS server playing the core at sipbreakout_core_uri: answers one INVITE, takes the ACK and the BYE."""

    def __init__(self, args):
        super().__init__(daemon=True)
        self.args = args
        self.seen = dict(sni=[], client_certificates=[], requests=[], error=None, closed_by_edge=None)
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
                    self.seen["closed_by_edge"] = True
                    break
                self.seen["requests"].append(request.as_dict())
                if request.method == "INVITE":
                    connection.sendall(self._response(request, "100 Trying", None))
                    connection.sendall(self._response(request, "200 OK", to_tag, sdp()))
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


class SilentListener(threading.Thread):
    """Accepts TCP connections and never says a word: a core address whose TLS handshake never completes."""

    def __init__(self, address):
        super().__init__(daemon=True)
        host, port = address.rsplit(":", 1)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, int(port)))
        self.listener.listen(4)
        self.listener.settimeout(0.2)
        self.accepted = 0
        self.connections = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                connection, _address = self.listener.accept()
            except socket.timeout:
                continue
            self.accepted += 1
            self.connections.append(connection)
        for connection in self.connections:
            connection.close()
        self.listener.close()

    def finish(self):
        self.stop.set()
        self.join()
        return self.accepted


def backend_call(args):
    core = CoreStandIn(args)
    core.start()
    scenario = prepare_scenario(args, "backend-uac.xml", {})
    backend = start_sipp(args, scenario, [
        "-i", "127.0.0.1", "-p", str(args.backend_port), "-s", args.number,
        "-key", "session_id", args.session_id, args.edge_backend_side])
    rc = finish_process(backend, TIMEOUT * 3)
    core.done.wait(TIMEOUT)
    received = [message.as_dict() for direction, message in sipp_messages(args, "backend-uac.xml")
                if direction == "received"]
    return dict(sipp_rc=rc, backend_received=[entry["first_line"] for entry in received],
                backend_responses=[entry for entry in received if entry["first_line"].startswith("SIP/2.0 ")],
                core=core.seen)


def backend_invite(args):
    """One INVITE from the backend's port over UDP; every response with the seconds it took, for --listen
    seconds after the first final one (a second final response would show)."""
    core = silent = None
    if args.core_listen:
        core = CoreStandIn(args)
        core.start()
    if args.silent_listen:
        silent = SilentListener(args.silent_listen)
        silent.start()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", args.backend_port))
    host, port = args.edge_backend_side.rsplit(":", 1)
    local = "127.0.0.1:%d" % args.backend_port
    call_id = secrets.token_hex(10) + "@backend.sipbreakout.test"
    from_header = "<sip:backend@%s>;tag=%s" % (local, secrets.token_hex(6))
    via_branch = branch()
    udp.sendto(build("INVITE sip:%s@%s SIP/2.0" % (args.number, args.edge_backend_side), [
        ("Via", "SIP/2.0/UDP %s;branch=%s;rport" % (local, via_branch)),
        ("Max-Forwards", "70"),
        ("From", from_header),
        ("To", "<sip:%s@%s>" % (args.number, args.edge_backend_side)),
        ("Call-ID", call_id),
        ("CSeq", "1 INVITE"),
        ("Contact", "<sip:backend@%s>" % local),
        ("Session-ID", args.session_id),
        ("Content-Type", "application/sdp")], sdp()), (host, int(port)))
    started = time.time()
    responses, deadline = [], started + args.wait
    while time.time() < deadline:
        udp.settimeout(max(0.01, deadline - time.time()))
        try:
            data, _address = udp.recvfrom(65535)
        except socket.timeout:
            break
        response = parse_message(data.decode("utf-8", "replace"))
        if not response.is_response:
            continue
        responses.append(dict(status=response.status_line, after=round(time.time() - started, 2),
                              retry_after=response.get("Retry-After"), to=response.get("To")))
        if response.status >= 200:
            udp.sendto(build("ACK sip:%s@%s SIP/2.0" % (args.number, args.edge_backend_side), [
                ("Via", "SIP/2.0/UDP %s;branch=%s;rport" % (local, via_branch)),
                ("Max-Forwards", "70"), ("From", from_header), ("To", response.get("To")),
                ("Call-ID", call_id), ("CSeq", "1 ACK")]), (host, int(port)))
            deadline = min(deadline, time.time() + args.listen)
    udp.close()
    result = dict(responses=responses, finals=[entry for entry in responses if not entry["status"][0] == "1"])
    if silent:
        result["silent_connections"] = silent.finish()
    if core:
        core.done.wait(1)
        result["core"] = core.seen
    return result


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
        command.add_argument("--certificate", help="the client certificate the core presents")
        command.add_argument("--private-key", help="its private key")

    core = commands.add_parser("core-call")
    tls_options(core)
    core.add_argument("--number", required=True, help="request-URI user as the core sends it")
    core.add_argument("--edge-uri-host", required=True, help="host[:port] of the request-URI")
    core.add_argument("--session-id", default=secrets.token_hex(16) + ";remote=" + "0" * 32)
    core.add_argument("--direction-header", default="X-Sipbreakout-Direction")
    core.add_argument("--backend-port", type=int, help="run the backend (SIPp UAS or baresip) on this UDP port")
    core.add_argument("--backend-scenario", default="backend-uas.xml", help="the SIPp UAS scenario of the backend")
    core.add_argument("--ua", action="store_true", help="the backend is baresip, not SIPp")
    core.add_argument("--ua-user", default="+4799990000", help="the number baresip answers")
    core.add_argument("--ua-ctrl-port", type=int, default=15074, help="baresip's ctrl_tcp port")
    core.add_argument("--steps", default="await-update,core-bye",
                      help="what happens once the call is answered (see above)")
    core.add_argument("--answer-timeout", type=float, default=TIMEOUT, help="seconds to wait for the final answer")
    core.add_argument("--watch-port", type=int, help="record whatever reaches this UDP port")
    core.add_argument("--answered", help="file to create once the INVITE has its final response")
    core.add_argument("--hold-until", help="after the ACK, run the steps only once this file exists")
    core.add_argument("--hold-timeout", type=int, default=300, help="seconds to wait for --hold-until")

    cancel = commands.add_parser("core-cancel")
    tls_options(cancel)
    cancel.add_argument("--number", required=True)
    cancel.add_argument("--edge-uri-host", required=True)

    certificate = commands.add_parser("tls-certificate")
    tls_options(certificate)

    def backend_options(command):
        command.add_argument("--edge-backend-side", required=True, help="the edge's backend listener, ADDRESS:PORT")
        command.add_argument("--backend-port", type=int, required=True, help="UDP port the backend sends from")
        command.add_argument("--number", required=True)
        command.add_argument("--session-id", default=secrets.token_hex(16) + ";remote=" + secrets.token_hex(16))
        command.add_argument("--core-certificate", help="the certificate the core stand-in presents")
        command.add_argument("--core-private-key")
        command.add_argument("--ca", required=True, help="CA file that verifies the edge's client certificate")

    backend = commands.add_parser("backend-call")
    backend_options(backend)
    backend.add_argument("--core-listen", required=True, help="ADDRESS:PORT of the core stand-in")

    invite = commands.add_parser("backend-invite")
    backend_options(invite)
    invite.add_argument("--core-listen", help="ADDRESS:PORT of a core stand-in")
    invite.add_argument("--silent-listen", help="ADDRESS:PORT of a TCP listener that never speaks")
    invite.add_argument("--wait", type=float, default=TIMEOUT, help="seconds to wait for a final response")
    invite.add_argument("--listen", type=float, default=1.5, help="seconds to listen on after the first one")

    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    handlers = {"core-call": core_call, "core-cancel": core_cancel, "tls-certificate": tls_certificate,
                "backend-call": backend_call, "backend-invite": backend_invite}
    result = handlers[args.command](args)
    if "session_id" in args:
        result["session_id_sent"] = args.session_id
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
