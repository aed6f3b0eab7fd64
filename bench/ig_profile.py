"""Run `python -m spine ig` under a wall-clock stack sampler: where IG's threads spend their time.

    python bench/ig_profile.py --out PATH [--interval-ms 10]    (with the `ig` mode's environment)

A poor man's py-spy, for `bench/ingress.py --profile-ig`: a daemon thread takes every thread's stack
(``sys._current_frames()``) each interval. When IG stops (SIGTERM or SIGINT ends its server loop) PATH gets,
per thread role, how many samples fell on each chain of spine frames and on each leaf frame. Wall-clock, not
CPU: a thread waiting on a socket counts as much as one computing, which is what a request's latency is made of.

Roles: ``request`` (a waitress worker inside the ``/v1/ingest`` handler), ``dedupe-pool`` (IG's
``ig-dedupe`` threads working for a request), ``delivery-poller``, ``idle`` (no spine frame on the stack).
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import spine

SPINE_DIR = str(Path(spine.__file__).resolve().parent) + "/"
TOP = 30


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/lib/python3."):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/lib/python3." and "/" in tail else tail
    return filename.removeprefix(str(Path(SPINE_DIR).parent) + "/")


class Sampler:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.samples = 0
        self.paths: dict[str, Counter[str]] = {}
        self.leaves: dict[str, Counter[str]] = {}
        self.began = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval_s):
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident != me:
                    self._record(names.get(ident, "?"), frame)
            self.samples += 1

    def _record(self, name: str, frame: FrameType) -> None:
        stack: list[FrameType] = []
        current: FrameType | None = frame
        while current is not None:
            stack.append(current)  # innermost first
            current = current.f_back
        own = [f for f in reversed(stack) if f.f_code.co_filename.startswith(SPINE_DIR)]
        if name.startswith("ig-dedupe"):
            role = "dedupe-pool" if own else "idle"
        elif name == "ig-delivery":
            role = "delivery-poller"
        elif any(f.f_code.co_name == "ingest_batch" for f in own):
            role = "request"
        else:
            role = "other-spine" if own and not name.startswith("MainThread") else "idle"
        if role == "idle":
            return
        path = ">".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in own)
        leaf = stack[0]
        self.paths.setdefault(role, Counter())[path] += 1
        self.leaves.setdefault(role, Counter())[f"{_short(leaf.f_code.co_filename)}:{leaf.f_code.co_name}"] += 1

    def to_json(self) -> dict[str, Any]:
        def top(counter: Counter[str]) -> list[dict[str, Any]]:
            total = sum(counter.values()) or 1
            return [{"where": k, "samples": n, "share": round(n / total, 4)} for k, n in counter.most_common(TOP)]

        return {"interval_ms": round(self.interval_s * 1000, 3), "ticks": self.samples,
                "wall_s": round(time.monotonic() - self.began, 3),
                "roles": {role: {"samples": sum(self.paths[role].values()), "spine_paths": top(self.paths[role]),
                                 "leaves": top(self.leaves[role])} for role in sorted(self.paths)}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    parser.add_argument("--wrapper", type=Path, help="a script to import first (bench/ingress.py --ig-wrapper)")
    args = parser.parse_args()
    if args.wrapper:  # its `if __name__ == "__main__"` block does not run: only its patches apply
        runpy.run_path(str(args.wrapper), run_name="ig_wrapper")
    from spine.cli import main as spine_main

    sampler = Sampler(args.interval_ms / 1000)
    sampler.start()
    try:
        return spine_main(["ig"])
    except KeyboardInterrupt:  # IG turns SIGTERM into an interrupt that ends its server loop
        return 0
    finally:
        sampler.stop()
        args.out.write_text(json.dumps(sampler.to_json(), indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
