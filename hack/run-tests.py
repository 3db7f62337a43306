#!/usr/bin/env python3
"""Runs the workspace's test binaries, a few at a time.

`cargo test` runs one test binary after the other, each with --test-threads: a binary holding a
single long integration test (most of them here: they start a real kube-apiserver, etcd and Cluster
API) leaves the other thread idle for minutes. This runs KAAS_TEST_JOBS binaries at once (default
2), each with KAAS_TEST_THREADS threads (default 1), so as many tests run at a time as before. The
binaries that start Cluster API's in-memory provider (one per machine: a machine-wide lock) run
one after the other in one worker; the others start slowest first (hack/test-order). Like
`cargo test`, each binary runs in its package's directory. Every binary runs even after a
failure; the output of each is printed whole when it ends, and a table of their times at the end.

Usage: cargo test --no-run --message-format=json ... | hack/run-tests.py [args passed to every binary]
"""

import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ORDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test-order")


def binaries(lines):
    """(label, executable, package directory) of every test binary cargo built."""
    found = {}
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        msg = json.loads(line)
        if msg.get("reason") != "compiler-artifact" or not msg.get("profile", {}).get("test"):
            continue
        exe = msg.get("executable")
        if not exe:
            continue
        # `path+file:///…/dir#name@0.1.0`, or `…/name#0.1.0` when the directory is the name.
        source, _, tail = msg["package_id"].rpartition("#")
        package = tail.split("@")[0] if "@" in tail else source.rstrip("/").rsplit("/", 1)[-1]
        target = msg["target"]
        kind = target["kind"][0]
        label = f"{package} {target['name']}" if kind in ("test", "bench") else f"{package} ({kind})"
        found[exe] = (label, exe, os.path.dirname(msg["manifest_path"]))
    return list(found.values())


def order(bins):
    """(lane, rest): the binaries of hack/test-order's `[in-memory]` section, in its order, and the
    others — those of its `[first]` section first, in its order, then the rest as cargo built them."""
    sections = {"in-memory": [], "first": []}
    if os.path.exists(ORDER):
        current = None
        with open(ORDER) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                if line.startswith("[") and line.endswith("]"):
                    current = sections.setdefault(line[1:-1], [])
                elif current is not None:
                    current.append(line)
    labels = {b[0] for b in bins}
    unknown = [n for names in sections.values() for n in names if n not in labels]
    if unknown:
        print(f"run-tests: {ORDER} names no such test binary: {', '.join(unknown)}",
              file=sys.stderr)
    by_label = {b[0]: b for b in bins}
    lane = [by_label[n] for n in sections["in-memory"] if n in by_label]
    first = [by_label[n] for n in sections["first"] if n in by_label]
    taken = {b[0] for b in lane + first}
    return lane, first + [b for b in bins if b[0] not in taken]


def main():
    args = sys.argv[1:]
    jobs = int(os.environ.get("KAAS_TEST_JOBS", "2"))
    threads = os.environ.get("KAAS_TEST_THREADS", "1")
    bins = binaries(sys.stdin)
    if not bins:
        print("run-tests: cargo built no test binary", file=sys.stderr)
        return 1
    lane, rest = order(bins)
    print(f"run-tests: {len(bins)} test binaries, {jobs} at a time, {threads} thread(s) each; "
          f"{len(lane)} that run Cluster API's in-memory provider one after the other",
          file=sys.stderr, flush=True)
    printing = threading.Lock()
    results = []

    def run(b):
        label, exe, cwd = b
        with printing:
            print(f"run-tests: started {label}", file=sys.stderr, flush=True)
        with tempfile.TemporaryFile() as out:
            t0 = time.monotonic()
            rc = subprocess.call([exe, f"--test-threads={threads}", *args], cwd=cwd,
                                 stdout=out, stderr=subprocess.STDOUT)
            took = time.monotonic() - t0
            out.seek(0)
            text = out.read().decode("utf-8", "replace")
        passed = sum(int(m) for m in re.findall(r"test result: \w+\. (\d+) passed", text))
        failed = sum(int(m) for m in re.findall(r"(\d+) failed;", text))
        with printing:
            print(f"\n---- {label}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {took:.1f} s "
                  f"({os.path.relpath(exe)})", flush=True)
            sys.stdout.write(text)
            sys.stdout.flush()
            results.append((label, rc, took, passed, failed))

    # One worker runs the in-memory lane (only one such plane per machine: in the other workers
    # they would wait for its lock), then helps with the rest.
    queues = [collections.deque(lane), collections.deque(rest)]
    taking = threading.Lock()

    def worker(lanes):
        while True:
            with taking:
                q = next((queues[i] for i in lanes if queues[i]), None)
                b = q.popleft() if q else None
            if b is None:
                return
            run(b)

    if jobs <= 1:
        worker([0, 1])
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for f in [pool.submit(worker, [0, 1])] + [pool.submit(worker, [1]) for _ in
                                                       range(jobs - 1)]:
                f.result()

    print("\n---- test binaries by time", flush=True)
    for label, rc, took, passed, failed in sorted(results, key=lambda r: -r[2]):
        print(f"{took:8.1f} s  {'ok    ' if rc == 0 else 'FAILED'}  {passed:4} passed  {label}")
    failures = [r for r in results if r[1] != 0]
    total = sum(r[3] for r in results)
    print(f"\n{total} tests passed, {sum(r[4] for r in results)} failed, in {len(results)} binaries; "
          f"{len(failures)} binaries failed: {', '.join(r[0] for r in failures) or 'none'}",
          flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
