"""Loads the certification plugin and the step definitions for `pytest features/`."""

pytest_plugins = [
    "harness.pytest_plugin",
    "steps.evidence",
    "steps.packaging",
    "steps.substrate",
    "steps.run_pinning",
    "steps.daemons",
    "steps.ingress",
    "steps.pipeline",
    "steps.closure",
    "steps.oracle",
    "steps.certification",
    "steps.drills",
    "steps.teardown",
]
