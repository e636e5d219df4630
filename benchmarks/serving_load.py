"""A bounded load test of the serving path on loopback: the gRPC client against the fake model server
(testkit/fake_model_server.py) over a pushed model, at several concurrencies, healthy and overloaded.

    infra/env/run.sh python -m benchmarks.serving_load --model-base runs/bloodcell/serving/bloodcell \
        [--requests 200] [--concurrency 1 4 16 32] [--time-limit 120]

Each cell sends a fixed number of one-image requests from N threads (one client each) and stops at the
time limit. Healthy: every Predict answers. Overloaded: the server answers UNAVAILABLE to everything,
as TF Serving does when its batch queue is full; what matters there is how many calls the clients
make per request (retry throttling keeps it near 1) and how fast they give up. Throughput and
latencies are relative to this machine: compare rows of one run, not runs.
"""
from __future__ import annotations

import argparse
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from serving.client import GrpcClient, ServingError
from testkit.fake_model_server import FakeModelServer
from testkit.images import sample_jpegs


def run_cell(base: str, overloaded: bool, concurrency: int, requests: int, time_limit: float,
             image: bytes) -> dict:
    with FakeModelServer(base, "bloodcell", unavailable_first=10**9 if overloaded else 0) as server:
        latencies, errors, lock = [], 0, threading.Lock()
        deadline = time.monotonic() + time_limit
        per_worker = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]

        def worker(count: int) -> None:
            nonlocal errors
            with GrpcClient(f"127.0.0.1:{server.grpc_port}", "bloodcell", timeout_s=10) as client:
                for _ in range(count):
                    if time.monotonic() > deadline:
                        return
                    start = time.perf_counter()
                    try:
                        client.predict([image])
                        failed = False
                    except ServingError:
                        failed = True
                    with lock:
                        latencies.append(time.perf_counter() - start)
                        errors += failed

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(worker, per_worker))
        wall = time.perf_counter() - started
        ordered = sorted(latencies)
        return {"sent": len(latencies), "errors": errors, "calls": server.prediction.calls,
                "per_s": len(latencies) / wall, "p50_ms": 1000 * statistics.median(ordered),
                "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-base", required=True, help="TF Serving's base path (numbered versions inside)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per cell, at most")
    args = parser.parse_args()
    image = sample_jpegs("TEST", "LYMPHOCYTE")[0].read_bytes()
    print(f"{args.requests} one-image requests per cell, at most {args.time_limit:g} s; model {Path(args.model_base)}")
    print("| server | concurrency | sent | errors | server calls per request | requests/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for overloaded in (False, True):
        for concurrency in args.concurrency:
            r = run_cell(args.model_base, overloaded, concurrency, args.requests, args.time_limit, image)
            print(f"| {'overloaded' if overloaded else 'healthy'} | {concurrency} | {r['sent']} | {r['errors']} | "
                  f"{r['calls'] / max(r['sent'], 1):.2f} | {r['per_s']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
