from __future__ import annotations

import logging
from pathlib import Path

import pytest

from harness import redact


def test_scrub_masks_every_registered_secret_longest_first() -> None:
    redact.register("abcdef-secret")
    redact.register("abcdef-secret-longer")
    assert redact.scrub("x abcdef-secret-longer y abcdef-secret") == f"x {redact.MASK} y {redact.MASK}"


def test_short_values_are_not_masked_but_reported() -> None:
    assert redact.register("abc") is False
    assert redact.register("long-enough") is True
    assert redact.scrub("abc long-enough") == f"abc {redact.MASK}"


def test_scrub_tree_rewrites_only_files_with_secrets(tmp_path: Path) -> None:
    redact.register("planted-secret-1234")
    (tmp_path / "a").write_text("has planted-secret-1234 inside")
    (tmp_path / "b").write_text("clean")
    changed = redact.scrub_tree(tmp_path)
    assert changed == [tmp_path / "a"]
    assert redact.find_in_tree(tmp_path, "planted-secret-1234") == []


def test_logging_filter_masks_arguments(caplog: pytest.LogCaptureFixture) -> None:
    redact.register("planted-secret-5678")
    logger = logging.getLogger("test.redact")
    logger.addFilter(redact.ScrubFilter())
    with caplog.at_level(logging.INFO):
        logger.info("connecting with %s", "planted-secret-5678")
    assert "planted-secret-5678" not in caplog.text
    assert redact.MASK in caplog.text


def test_ssm_parameter_evidence_never_carries_a_secure_value() -> None:
    from harness.aws.ssm import Parameter

    secure = Parameter(name="/p/k", type="SecureString", version=1, value="very-secret-value")
    plain = Parameter(name="/p/b", type="String", version=1, value="127.0.0.1:9092")
    assert secure.to_json()["value"] is None
    assert plain.to_json()["value"] == "127.0.0.1:9092"
    assert "very-secret-value" not in repr(secure)


def test_installed_log_scrubbing_covers_every_logger(caplog: pytest.LogCaptureFixture) -> None:
    redact.install_log_scrubbing()
    redact.register("planted-secret-9012")
    with caplog.at_level(logging.INFO):
        logging.getLogger("any.other.logger").info("dsn=%s", "postgresql://u:planted-secret-9012@h/db")
    assert "planted-secret-9012" not in caplog.text
