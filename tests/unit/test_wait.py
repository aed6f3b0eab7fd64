from __future__ import annotations

import itertools

import pytest

from harness.errors import Timeout
from harness.wait import wait_until


def test_returns_the_first_truthy_value() -> None:
    counter = itertools.count()
    assert wait_until(lambda: next(counter) >= 3 and "ready", timeout_s=5, backoff_s=0.001, err_msg="x") == "ready"


def test_timeout_chains_the_last_error() -> None:
    def boom() -> None:
        raise ConnectionRefusedError("refused")

    with pytest.raises(Timeout) as err:
        wait_until(boom, timeout_s=0.05, backoff_s=0.01, err_msg="broker did not answer", operation="start x")
    assert "broker did not answer after 0.1s (last error: refused)" in str(err.value)
    assert isinstance(err.value.__cause__, ConnectionRefusedError)
    assert err.value.code == "Timeout"


@pytest.mark.parametrize(("kwargs", "message"), [({"timeout_s": 0}, "timeout_s=0 must be > 0"),
                                                  ({"timeout_s": 1, "backoff_s": -1}, "backoff_s=-1")])
def test_bad_arguments_name_themselves(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wait_until(lambda: True, err_msg="x", **kwargs)
