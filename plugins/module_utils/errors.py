# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exceptions raised by the collection's plain-Python layers.

Every message is written for the person who reads the failed task: it names the number, the option and what to
do. No exception ever carries a secret: callers pass only names and public values.
"""


class SipBreakoutError(Exception):
    """Base class; ``message`` is the text shown to the user."""

    def __init__(self, message, phone_number=None):
        super().__init__(message)
        self.message = message
        self.phone_number = phone_number

    def __str__(self):
        if self.phone_number and self.phone_number not in self.message:
            return "%s: %s" % (self.phone_number, self.message)
        return self.message


class ValidationError(SipBreakoutError):
    """Bad input, found before any call is made. ``option`` names the offending option."""

    def __init__(self, option, message, phone_number=None):
        super().__init__("%s: %s" % (option, message), phone_number)
        self.option = option


class AuthError(SipBreakoutError):
    """The token endpoint refused us, or the API refused our token."""


class ApiError(SipBreakoutError):
    """A gRPC call failed. ``code`` is the gRPC status name (``UNAVAILABLE``...) or ``None``."""

    def __init__(self, message, phone_number=None, code=None, retryable=False):
        super().__init__(message, phone_number)
        self.code = code
        self.retryable = retryable


class NotAcceptableError(ApiError):
    """The API answered ``STATUS_CODE_NOT_ACCEPTABLE``; ``error_message`` is the server's own text."""

    def __init__(self, error_message, phone_number=None):
        text = error_message or "no reason given"
        super().__init__(
            "the API rejected the registration (STATUS_CODE_NOT_ACCEPTABLE): %s" % text,
            phone_number, code="NOT_ACCEPTABLE")
        self.error_message = error_message


class LedgerError(SipBreakoutError):
    """The ledger cannot be read, locked or written. It is never reset to hide this."""


class LedgerUnreachable(LedgerError):
    """The shared (PostgreSQL) ledger cannot be reached: a run sends nothing, the keepalive uses its local copy."""
