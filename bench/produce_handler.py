"""The Produce handler alone: handle_produce called in a loop on one fixed request.

Run: `.venv/bin/python bench/produce_handler.py [--shape 1rec|100B|10KB] [--calls N]`.
Prints figures; asserts nothing.

No server, no sockets, no event loop: one Produce v10 request of the shape's batch
(bench/produce_path.py's shapes) is decoded once and handed to handle_produce N times,
each call appending to the same partition of a broker in a fresh data dir under /tmp
(deleted afterwards). What remains per call is the handler's own work: topic and
partition lookup, the checks, validation, the append (one pwritev) and the response
objects. Unlike produce_path.py, nothing here depends on timing (how requests split
into reads, how often the loop waits), so under `valgrind --tool=callgrind` two runs
(--calls N and --calls M, subtract, divide by N - M) give the same instruction count
per call on any machine, however loaded: the figure to compare a handler or log change
by.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from produce_path import SHAPES, TOPIC, shape_frame  # noqa: E402

from kbroker.broker import BrokerState  # noqa: E402
from kbroker.config import BrokerConfig  # noqa: E402
from kbroker.handlers import RequestContext  # noqa: E402
from kbroker.handlers.produce import handle_produce  # noqa: E402
from kbroker.wire.protocol import decode_request  # noqa: E402


def call_once(ctx: RequestContext, request: Any) -> Any:
    """handle_produce to completion (it never waits on a single node)."""
    coro = handle_produce(ctx, request)
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("handle_produce waited: not a single-node request")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="1rec", choices=list(SHAPES))
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kbroker-produce-handler-"))
    try:
        config = BrokerConfig.from_properties(
            {"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": str(tmp / "data")}
        )
        broker = BrokerState(config)
        broker.topics.create(TOPIC, 1, {})
        # In a bytearray, as the server's frame decoder holds a request: the framing
        # check reads a view of one without copying it (wire.records._byte_source).
        frame = bytearray(shape_frame(args.shape, 0))
        header, request = decode_request(memoryview(frame)[4:])
        ctx = RequestContext(broker, header, header.request_api_version, "127.0.0.1:1", ("", 0))
        # A first call outside the count: settings cached, segment files open.
        first = call_once(ctx, request)
        code = first.responses[0].partition_responses[0].error_code
        if code:
            print(f"the request was refused with error {code}", file=sys.stderr)
            return 1
        started = time.process_time()
        for _ in range(args.calls):
            call_once(ctx, request)
        cpu = time.process_time() - started
        per_call = cpu / args.calls * 1e6 if args.calls else float("nan")
        print(
            f"handle_produce {args.shape}: {args.calls} calls, {cpu * 1e3:.1f} ms CPU = "
            f"{per_call:.1f} us per call ({len(frame)} bytes per request)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
