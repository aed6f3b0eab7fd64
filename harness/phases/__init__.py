"""Phase checks: each phase observes (and records evidence) first, then judges."""
