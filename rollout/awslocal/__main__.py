"""``python -m rollout.awslocal [--port N] [--latency SECONDS]``: serve the local AWS emulation in this
process until interrupted; prints ``http://127.0.0.1:PORT`` on its first line (for benchmarks that
want the server on a core of its own, and for trying the AWS backend by hand)."""

from __future__ import annotations

import argparse
import signal
import threading

from rollout.awslocal.server import LocalAws


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m rollout.awslocal")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request, outside the lock")
    args = parser.parse_args()
    server = LocalAws(args.latency, args.port).start()
    print(server.endpoint, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    server.stop()


if __name__ == "__main__":
    main()
