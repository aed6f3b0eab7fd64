"""Ctrl-C while confluent-kafka runs the harness's delivery callbacks still stops the certification."""

from __future__ import annotations

import os
import signal

import pytest

from harness.kafka import produce


def test_ctrl_c_during_a_flush_is_raised_once_the_flush_returns() -> None:
    before = signal.getsignal(signal.SIGINT)
    reached_the_end = False
    with pytest.raises(KeyboardInterrupt, match="interrupted while the harness's records were being delivered"), \
            produce._interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)  # delivered at once to this (main) thread's handler
        reached_the_end = True  # the flush is not cut short: the callbacks cannot lose it
    assert reached_the_end
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back


def test_nothing_is_raised_without_a_ctrl_c() -> None:
    before = signal.getsignal(signal.SIGINT)
    with produce._interrupts_deferred():
        pass
    assert signal.getsignal(signal.SIGINT) is before
