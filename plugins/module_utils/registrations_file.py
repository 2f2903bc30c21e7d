# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registrations from a file on the host, one a line, for the operator-sized lists Ansible variables cannot carry.

Two formats, UTF-8 (a byte order mark is skipped; CRLF line ends are fine):

* ``csv``: a header row naming the columns, then one registration a row. The columns are the fields of an item of
  the module's ``registrations`` option (``FIELDS``); ``sip_uri`` is required, the others may be left out; an empty
  cell is an unset field.
* ``jsonl`` (JSON lines, ``.ndjson`` too): one JSON object a line with those keys, each a string or null.

Blank lines are skipped. The file is read a line at a time, twice: :meth:`RegistrationsFile.check` validates every
line with the same ``Registration`` rules as the list and refuses duplicates, keeping only a digest of each key;
only a file without a single problem is then read again by :meth:`RegistrationsFile.items` for the calls. The file
stays open between the two passes, so a copy that replaces it (as Ansible's copy module does) is not seen; a change
made to the open file itself is refused.
"""

import csv
import errno
import hashlib
import io
import json
import os
import stat

from .errors import ValidationError
from .registration import Item, Registration, normalize_state

OPTION = "registrations_file"
FIELDS = ("phone_number", "sip_uri", "route_type", "mobile_originating_prefix", "mobile_terminating_prefix",
          "state")
FORMATS = ("csv", "jsonl")
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# Problems named in the failure; the rest are counted.
MAX_PROBLEMS = 20
# A registration is a line of a few hundred bytes at most; a longer one means this is not a registrations file, and
# reading on would hold it all in memory.
MAX_LINE_BYTES = 64 * 1024
_BOM = b"\xef\xbb\xbf"
# How often (in lines) the file's size and modification time are compared with what the check pass saw.
_STAT_EVERY = 1000


def detect_format(path, file_format=None):
    """``csv`` or ``jsonl``: ``file_format`` when given (not ``auto``), else from the file name's extension."""
    if file_format not in (None, "", "auto"):
        if file_format not in FORMATS:
            raise ValidationError("registrations_file_format", "'%s' is not one of auto, %s"
                                  % (file_format, ", ".join(FORMATS)))
        return file_format
    extension = os.path.splitext(path)[1].lower()
    if extension not in EXTENSIONS:
        raise ValidationError("registrations_file_format", "cannot tell the format of %s from its extension '%s'; "
                                                           "name it *.csv, *.jsonl or *.ndjson, or set "
                                                           "registrations_file_format to csv or jsonl"
                              % (path, extension))
    return EXTENSIONS[extension]


def _digest(key):
    # 128 bits: no two of a billion keys collide in practice, and an int of that size is what a set holds cheapest.
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest(), "big")


class KeyDigests:
    """A set of ledger keys held as 128-bit digests: about 80 bytes a key, so a million fit in 80 MB."""

    def __init__(self, keys=()):
        self._digests = set()
        for key in keys:
            self.add(key)

    def add(self, key):
        """Add ``key``; False when it was there already."""
        digest = _digest(key)
        if digest in self._digests:
            return False
        self._digests.add(digest)
        return True

    def __contains__(self, key):
        return _digest(key) in self._digests

    def __len__(self):
        return len(self._digests)


class _FileChanged(Exception):
    """Raised inside the reader when the open file no longer is what the check pass read."""


class Checked:
    """What the check pass keeps: how many registrations, the digests of their keys, when asked for the phone
    numbers they name, and the first problems."""

    def __init__(self, keys, numbers):
        self.count = 0
        self.keys = keys
        self.numbers = numbers
        self.problems = []
        self.problem_count = 0


class _Problems:
    """The first MAX_PROBLEMS problems, by line, and how many there were in all."""

    def __init__(self):
        self.first = []
        self.total = 0

    def add(self, line, message):
        self.total += 1
        if len(self.first) < MAX_PROBLEMS:
            self.first.append((line, message))


class RegistrationsFile:
    """``with RegistrationsFile(path) as source:`` then ``source.check(key)`` and ``source.items()``."""

    def __init__(self, path, file_format=None):
        self.path = os.path.abspath(os.path.expanduser(path))
        self.format = detect_format(self.path, file_format)
        self._handle = None
        self._identity = None

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc_info):
        self.close()

    def open(self):
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise ValidationError(OPTION, "%s does not exist on this host" % self.path)
            raise ValidationError(OPTION, "cannot open %s: %s" % (self.path, exc.strerror or exc))
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise ValidationError(OPTION, "%s is not a regular file" % self.path)
        self._handle = io.open(fd, "rb")
        self._identity = _identity(info)

    def close(self):
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _where(self, line):
        return "%s line %d" % (self.path, line)

    def check(self, key, check=None, numbers=False):
        """Validate every line, before anything is sent: :meth:`scan`, then one ValidationError naming the first
        MAX_PROBLEMS problems with their lines, or for a file without registrations. Returns the :class:`Checked`."""
        checked = self.scan(key, check, numbers)
        if checked.problem_count:
            more = checked.problem_count - len(checked.problems)
            raise ValidationError(OPTION, "%s has %d problem(s); nothing was sent and the ledger is unchanged:\n%s%s"
                                  % (self.path, checked.problem_count,
                                     "\n".join("line %d: %s" % problem for problem in checked.problems),
                                     "\n... and %d more" % more if more else ""))
        if not checked.count:
            raise ValidationError(OPTION, "%s holds no registration. A file cut short or copied wrong must not "
                                          "count as an empty list; to remove every registration, give "
                                          "registrations: [] with purge and max_purge=100" % self.path)
        return checked

    def scan(self, key, check=None, numbers=False):
        """Read every line: ``key(registration)`` is the ledger key (a repeated one is a problem), ``check(item)``
        raises ValidationError for what else a line must meet (what the credentials demand). Returns a
        :class:`Checked` with the first MAX_PROBLEMS ``(line, problem)`` in ``problems``, by line, and their number
        in ``problem_count``; raises ValidationError only for a file that cannot be read as registrations."""
        checked = Checked(KeyDigests(), set() if numbers else None)
        problems = _Problems()
        duplicates = _Problems()  # (line, digest) of the first MAX_PROBLEMS repeated keys
        try:
            for line, item, problem in self._entries(check):
                if problem is not None:
                    problems.add(line, problem)
                    continue
                checked.count += 1
                item_key = key(item.registration)
                if not checked.keys.add(item_key):
                    duplicates.add(line, _digest(item_key))
                elif numbers and item.registration.phone_number:
                    checked.numbers.add(item.registration.phone_number)
            found = problems.first + self._duplicates(duplicates.first, key, check)
        except _FileChanged:
            raise ValidationError(OPTION, "%s changed while it was being checked (its size or modification time); "
                                          "nothing was sent. Write a new file and rename it into place instead"
                                  % self.path)
        checked.problems = sorted(found)[:MAX_PROBLEMS]
        checked.problem_count = problems.total + duplicates.total
        return checked

    def _duplicates(self, repeated, key, check):
        """(line, message) of each ``(line, digest)`` of a repeated key: another pass finds where it first was."""
        if not repeated:
            return []
        wanted = set(digest for _line, digest in repeated)
        first = {}
        for line, item, problem in self._entries(check):
            if problem is None:
                digest = _digest(key(item.registration))
                if digest in wanted and digest not in first:
                    first[digest] = (line, item.registration.label)
        return [(line, "%s is on line %d already; each registration may be declared once"
                 % (first[digest][1], first[digest][0])) for line, digest in repeated]

    def items(self, check=None):
        """The file's registrations as :class:`Item` s, in order, read again for the calls. Raises ValidationError
        when a line no longer validates or the file changed since :meth:`check` (what was sent before that stays
        sent and recorded)."""
        changed = "%s changed after it was checked (%s); the registrations before were applied and recorded, the " \
                  "rest were not sent. Write a new file and rename it into place instead"
        try:
            for line, item, problem in self._entries(check):
                if problem is not None:
                    raise ValidationError(OPTION, changed % (self.path, "line %d: %s" % (line, problem)))
                yield item
        except _FileChanged:
            raise ValidationError(OPTION, changed % (self.path, "its size or modification time"))

    def _entries(self, check=None):
        """(line, Item, None) for each registration, (line, None, problem) for each bad line, from the start."""
        self._handle.seek(0)
        self._unchanged()
        rows = self._csv_rows() if self.format == "csv" else self._jsonl_rows()
        for line, values, problem in rows:
            if problem is not None:
                yield line, None, problem
                continue
            try:
                state = normalize_state(values.get("state"))
                item = Item(Registration.from_options(values, state), state, line)
                if check is not None:
                    check(item)
            except ValidationError as exc:
                yield line, None, str(exc)
                continue
            yield line, item, None

    def _lines(self):
        """(line number, text, None) of every physical line, its end kept, or (line number, None, problem) for one
        that is not UTF-8. A byte order mark at the start is skipped."""
        number = 0
        while True:
            raw = self._handle.readline(MAX_LINE_BYTES + 1)
            if not raw:
                self._unchanged()
                return
            number += 1
            if number % _STAT_EVERY == 0:
                self._unchanged()
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                raise ValidationError(OPTION, "%s is longer than %d bytes; a registration takes one short line, so "
                                              "this is not a %s registrations file"
                                      % (self._where(number), MAX_LINE_BYTES, self.format))
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, None, "is not UTF-8 text (byte 0x%02x at column %d); save the file as UTF-8" % (
                    raw[exc.start], exc.start + 1)
                continue
            yield number, text, None

    def _unchanged(self):
        if _identity(os.fstat(self._handle.fileno())) != self._identity:
            raise _FileChanged()

    def _jsonl_rows(self):
        for line, text, problem in self._lines():
            if problem is not None:
                yield line, None, problem
            elif text.strip():
                yield (line,) + _json_values(text)

    def _csv_rows(self):
        """Rows of the csv module, fed one physical line at a time so that each row knows its first line."""
        position = dict(line=0, bad=None)

        def lines():
            for line, text, problem in self._lines():
                position["line"] = line
                if problem is not None:
                    if position["bad"] is None:
                        position["bad"] = (line, None, problem)
                    text = "\n"  # the undecodable line still ends a row, so the rows after it keep their lines
                yield text

        reader = csv.reader(lines(), strict=True)
        columns = None
        while True:
            start = position["line"] + 1
            position["bad"] = None
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise ValidationError(OPTION, "%s: %s (a double quote that is never closed?)" % (
                    self._where(start), exc))
            if position["bad"] is not None:
                yield position["bad"]
                if columns is None:
                    return
            elif not any(cell.strip() for cell in row):
                continue
            elif columns is None:
                columns = self._header(row, start)
            elif len(row) != len(columns):
                yield start, None, "has %d field(s), the header has %d (%s)" % (
                    len(row), len(columns), ",".join(columns))
            else:
                # Spaces only: a tab or a line break in a cell is refused with the field, not silently dropped.
                yield start, dict((name, cell.strip(" ") or None) for name, cell in zip(columns, row)), None
        if columns is None:
            raise ValidationError(OPTION, "%s is empty: a CSV registrations file starts with a header row naming "
                                          "its columns, %s" % (self.path, ",".join(FIELDS)))

    def _header(self, row, line):
        columns = [cell.strip() for cell in row]
        unknown = [name for name in columns if name not in FIELDS]
        if unknown:
            hint = ""
            if len(columns) == 1 and ";" in columns[0]:
                hint = "; columns are separated by commas, not semicolons"
            elif any(name.startswith(("+", "sips:", "sip:")) for name in columns):
                hint = "; the first row must be the header naming the columns"
            raise ValidationError(OPTION, "%s: the header names unknown column(s) %s; the columns are %s%s"
                                  % (self._where(line), ", ".join("'%s'" % name for name in unknown),
                                     ", ".join(FIELDS), hint))
        repeated = sorted(set(name for name in columns if columns.count(name) > 1))
        if repeated:
            raise ValidationError(OPTION, "%s: the header names %s more than once" % (
                self._where(line), ", ".join(repeated)))
        if "sip_uri" not in columns:
            raise ValidationError(OPTION, "%s: the header has no sip_uri column; every registration needs one "
                                          "(the columns are %s)" % (self._where(line), ", ".join(FIELDS)))
        return columns


def _identity(info):
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _json_values(text):
    """(values, None) of one JSON line, or (None, problem)."""
    repeated = []

    def unique(pairs):
        names = [name for name, _value in pairs]
        repeated.extend(sorted(set(name for name in names if names.count(name) > 1)))
        return dict(pairs)

    try:
        values = json.loads(text, object_pairs_hook=unique)
    except ValueError as exc:
        return None, "is not a JSON object (%s)" % exc
    if not isinstance(values, dict):
        return None, "is a JSON %s, not an object with the keys %s" % (type(values).__name__, ", ".join(FIELDS))
    if repeated:
        return None, "names %s more than once" % ", ".join(repeated)
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        return None, "unknown key(s) %s; the keys are %s" % (", ".join(unknown), ", ".join(FIELDS))
    for name in FIELDS:
        value = values.get(name)
        if value is not None and not isinstance(value, str):
            return None, "%s: %s is not a string; quote it" % (name, json.dumps(value))
    return dict((name, value or None) for name, value in values.items()), None
