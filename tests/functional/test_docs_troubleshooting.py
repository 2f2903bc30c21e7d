# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/troubleshooting.md lists every message the collection produces.

Messages are found in the code, not listed by hand: the string templates of every raised exception and of the
collection's exception classes, of ``fail_json``, of the keepalive's error and warning log calls, to the problem and warning lists of the filters,
the keepalive and the service, and the literal text of the roles' ``assert``/``fail`` messages. Each template is
cut at its placeholders (``%s``, ``{{ ... }}``); the first words of its longest literal piece must appear in the
page. Rewording a message therefore means updating the page, and a new message cannot go undocumented.
"""

import ast
import glob
import os
import re

import ansible_collections
import pytest
import yaml

ROOT = os.path.join(os.path.dirname(list(ansible_collections.__path__)[0]), "ansible_collections", "wgtwo",
                    "sipbreakout")
PAGE = os.path.join(ROOT, "docs", "troubleshooting.md")

# Calls whose string arguments are messages someone reads.
MESSAGE_CALLS = {"ValidationError", "AuthError", "ApiError", "LedgerError", "LedgerUnreachable", "NotAcceptableError",
                 "RunLockBusy",
                 "SipBreakoutError", "AnsibleFilterError", "_error", "fail_json", "problem", "warn", "bad", "need"}
LOG_CALLS = {"error", "warning", "critical"}
LIST_NAMES = re.compile(r"problems|warnings|failures")
PLACEHOLDER = re.compile(r"%[-#0 +]*[0-9]*(?:\.[0-9]+)?[sdrgfx]|\{\{.*?\}\}|\{%.*?%\}", re.S)
KEY_WORDS = 6
# Punctuation at the ends of a literal piece belongs to the placeholder next to it ("'%s' is ...").
EDGE = " '\"`:;,.()[]"


def _literal(node):
    """The template of a message expression: a string, or the left side of ``template % values``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _literal(node.left)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal(node.left), _literal(node.right)
        if left or right:
            return (left or "%s") + (right or "%s")
    return None


def _python_templates(path):
    with open(path, "r", encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and LIST_NAMES.search(node.name):
            # def _key_problems(...): return ["message"], None
            for child in ast.walk(node):
                if isinstance(child, ast.Return) and child.value is not None:
                    value = child.value.elts[0] if isinstance(child.value, ast.Tuple) else child.value
                    if isinstance(value, ast.List):
                        for element in value.elts:
                            text = _literal(element)
                            if text:
                                yield child.lineno, text
        elif isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            # raise error("..." % ...), whatever the exception class is called
            for arg in node.exc.args:
                text = _literal(arg)
                if text:
                    yield node.lineno, text
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            receiver = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
            wanted = (name in MESSAGE_CALLS or (name in LOG_CALLS and receiver == "LOG")
                      or (name == "append" and LIST_NAMES.search(receiver)))
            if wanted:
                for arg in list(node.args) + [k.value for k in node.keywords if k.arg in ("msg", "message")]:
                    text = _literal(arg)
                    if text:
                        yield node.lineno, text
        elif isinstance(node, ast.Assign):
            # result["msg"] = "..." % (...)
            for target in node.targets:
                if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant) \
                        and target.slice.value in ("msg", "error"):
                    text = _literal(node.value)
                    if text:
                        yield node.lineno, text


def _jinja_literals(text):
    """Literal text around the Jinja blocks, and quoted strings inside them."""
    for block in re.findall(r"\{\{.*?\}\}|\{%.*?%\}", text, re.S):
        yield from re.findall(r"'((?:[^'\\]|\\.)*)'", block)
    yield PLACEHOLDER.sub("%s", text)


def _tasks(node):
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        yield node
        for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers"):
            if key in node:
                yield from _tasks(node[key])


def _yaml_templates(path):
    with open(path, "r", encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    for task in _tasks(data):
        for module in ("ansible.builtin.assert", "assert", "ansible.builtin.fail", "fail"):
            args = task.get(module)
            if not isinstance(args, dict):
                continue
            texts = [args.get("fail_msg"), args.get("msg")]
            texts += [value for value in (task.get("vars") or {}).values() if isinstance(value, str)]
            for text in texts:
                if isinstance(text, str):
                    for literal in _jinja_literals(text):
                        yield 0, literal


def _words(piece):
    return [token for token in piece.split() if re.search(r"[A-Za-z]", token)]


def _key(template):
    """What the page must contain for ``template``, as a tuple of pieces that must appear in this order on one
    line: the first words of its first literal piece of three words or more, else all its literal pieces. None
    for a template without two words to look for (an option name, ``%s: %s``)."""
    pieces = [" ".join(piece.split()).strip(EDGE) for piece in PLACEHOLDER.split(template.replace("%%", "%"))]
    pieces = [piece for piece in pieces if _words(piece)]
    if sum(len(_words(piece)) for piece in pieces) < 2:
        return None
    for piece in pieces:
        if len(piece.split()) >= 3:
            return (" ".join(piece.split()[:KEY_WORDS]).strip(EDGE),)
    return tuple(pieces)


def collect_messages(root):
    """{key phrase: [where it comes from]} for every message of the collection at ``root``."""
    found = {}
    sources = []
    for path in sorted(glob.glob(os.path.join(root, "plugins", "**", "*.py"), recursive=True)):
        if os.sep + "generated" + os.sep not in path and os.sep + "doc_fragments" + os.sep not in path:
            sources.append((path, _python_templates))
    for pattern in ("roles/*/tasks/**/*.yml", "roles/*/handlers/*.yml", "playbooks/*.yml"):
        for path in sorted(glob.glob(os.path.join(root, pattern), recursive=True)):
            sources.append((path, _yaml_templates))
    for path, extract in sources:
        for line, template in extract(path):
            key = _key(template)
            if key:
                found.setdefault(key, []).append("%s:%d" % (os.path.relpath(path, root), line))
    return found


def _normalise(text):
    return " ".join(text.replace("`", "").replace("\\", "").split()).lower()


def _on_one_line(line, key):
    position = 0
    for piece in key:
        position = line.find(_normalise(piece), position)
        if position < 0:
            return False
        position += len(_normalise(piece))
    return True


def missing_from(page_text, keys):
    """The keys no line of the page holds (a list item or paragraph counts as one line)."""
    lines = [_normalise(block) for block in re.split(r"\n\s*\n|\n(?=\s*[-*] )", page_text)]
    return sorted(key for key in keys if not any(_on_one_line(line, key) for line in lines))


@pytest.fixture(name="messages", scope="module")
def messages_fixture():
    return collect_messages(ROOT)


def test_every_message_is_on_the_troubleshooting_page(messages):
    with open(PAGE, "r", encoding="utf-8") as handle:
        page = handle.read()
    missing = missing_from(page, messages)
    assert missing == [], "docs/troubleshooting.md lacks these messages:\n" + "\n".join(
        "  %s  (%s)" % (" ... ".join(key), ", ".join(messages[key])) for key in missing)


def test_the_search_finds_the_messages_it_must(messages):
    # The extraction itself can fail: these come from each kind of source it reads.
    firsts = [key[0] for key in messages]
    for phrase in ("is not an https:// URL; tokens",        # ValidationError in module_utils
                   "It was left untouched: restore",        # the state files' own error class
                   "purge would delete",                    # service
                   "the first certificate cannot be read",  # a filter's problem list
                   "must be between 0 and 1",               # the keepalive config's range checks
                   "keepalive_interval must be 60 to"):     # a role's assert
        assert any(first.startswith(phrase) for first in firsts), phrase
    assert len(messages) > 60
    assert missing_from("nothing here", [("is not an https:// URL; tokens",)]) == [("is not an https:// URL; tokens",)]
    assert missing_from("- `refresh of … failed: …`", [("refresh of", "failed")]) == []
    assert missing_from("- refresh of\n\n- failed", [("refresh of", "failed")]) == [("refresh of", "failed")]
