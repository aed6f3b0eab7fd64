"""Loads the certification plugin and the step definitions for `pytest features/`."""

pytest_plugins = [
    "harness.pytest_plugin",
    "steps.substrate",
    "steps.teardown",
]
