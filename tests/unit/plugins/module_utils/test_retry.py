# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backoff stays within its bounds: jittered, capped, limited by retries and the deadline."""

import random

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.retry import Backoff, Deadline


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_delays_are_jittered_and_capped():
    backoff = Backoff(retries=10, base=0.25, cap=2.0, rng=random.Random(7))
    delays = [backoff.delay(attempt) for attempt in range(1, 11)]
    assert all(0 <= d <= min(2.0, 0.25 * 2 ** (n - 1)) for n, d in enumerate(delays, 1))
    assert len(set(delays)) == len(delays)


def test_retries_bound_the_attempts():
    clock = _Clock()
    backoff = Backoff(retries=3, sleep=clock.sleep, rng=random.Random(1))
    deadline = Deadline(100, clock=clock)
    assert [backoff.wait(n, deadline) for n in range(1, 6)] == [True, True, True, False, False]


def test_deadline_bounds_the_waiting():
    clock = _Clock()
    backoff = Backoff(retries=100, base=10, cap=10, sleep=clock.sleep, rng=random.Random(3))
    deadline = Deadline(5, clock=clock)
    attempts = 0
    while backoff.wait(attempts + 1, deadline):
        attempts += 1
    assert clock.now <= 5.0
