# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exponential backoff with full jitter, bounded by a number of retries and an overall deadline."""

import random
import time


class Deadline:
    """An absolute point in monotonic time that every attempt of one operation shares."""

    def __init__(self, seconds, clock=time.monotonic):
        self._clock = clock
        self.seconds = float(seconds)
        self._end = clock() + self.seconds

    def remaining(self):
        return max(0.0, self._end - self._clock())

    def expired(self):
        return self.remaining() <= 0.0


class Backoff:
    """Decides whether and how long to wait before the next attempt.

    Full jitter (a random wait between 0 and the exponential bound) spreads out the retries of many forks or
    keepalives that failed at the same moment, so they do not hit a recovering server in lockstep.
    """

    def __init__(self, retries=5, base=0.25, cap=8.0, sleep=time.sleep, rng=None):
        self.retries = int(retries)
        self.base = float(base)
        self.cap = float(cap)
        self._sleep = sleep
        self._rng = rng or random.Random()

    def delay(self, attempt):
        """The wait before retry number ``attempt`` (1 for the first retry)."""
        return self._rng.uniform(0, min(self.cap, self.base * (2 ** (attempt - 1))))

    def pause(self, attempt, deadline):
        """Seconds to wait before retry ``attempt``; None when no retry is left or the deadline would pass first."""
        if attempt > self.retries:
            return None
        pause = self.delay(attempt)
        return pause if pause < deadline.remaining() else None

    def wait(self, attempt, deadline):
        """Sleep before retry ``attempt``; False when no retry is left or the deadline would pass first."""
        pause = self.pause(attempt, deadline)
        if pause is None:
            return False
        self._sleep(pause)
        return True
