"""Browser delivery of several models, measured in the same run: bytes over the wire for a cold load,
cold-load time and median per-image inference in headless chromium (wasm, and webgl if it runs).

    infra/env/run.sh python -m benchmarks.browser_delivery --model default=SAVEDMODEL_DIR \
        --model tutorial_cnn=SAVEDMODEL_DIR [--quantization float16] [--loads 5] [--repeats 30]

Each SavedModel (a pushed version folder) is converted and published as the pipeline does, served by
nginx as the CDN, and loaded by the built web client (web/). The first --model is the ratios' baseline.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from testkit import browser as bh

from components.tfjs_publisher import convert, publish
from models.features import BROWSER_INPUT
from pipeline.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--quantization", default="float16", choices=convert.QUANTIZATIONS)
    parser.add_argument("--backend", action="append", help="default: wasm and webgl")
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-browser-", dir="/tmp") as tmp:
        origin = os.path.join(tmp, "origin")
        names = []
        config = load_config()
        for spec in args.model:
            name, saved_model = spec.split("=", 1)
            convert.convert(saved_model, os.path.join(tmp, name), args.quantization)
            # The metadata the web client needs; no eval figures (these models are only timed).
            metadata = {"model_name": name, "class_names": config.class_names, "image_size": config.image_size,
                        "review_threshold": config.browser.review_threshold, "quantization": args.quantization,
                        "input": {"name": BROWSER_INPUT}, "eval": {"split": "n/a", "metrics": {}}}
            publish.publish(os.path.join(tmp, name), origin, name, "1", metadata)
            names.append(name)
        bh.world_readable(origin)
        dist = os.path.join(tmp, "dist")
        # The page loads models only from origins its build allows: the CDN's port is fixed before it.
        subprocess.run(["npm", "run", "build", "--", "--outDir", dist], cwd=bh.WEB, check=True,
                       capture_output=True, env={**os.environ, "VITE_ALLOWED_MODEL_ORIGINS": bh.CDN_ORIGIN})
        with bh.static_server(dist) as app, bh.nginx_cdn(origin, app, bh.CDN_PORT) as (cdn, _):
            cmd = ["node", "scripts/browser-bench.mjs", "--app", app, "--loads", str(args.loads),
                   "--repeats", str(args.repeats)]
            for name in names:
                cmd += ["--model", f"{name}={cdn}/{name}/"]
            for backend in args.backend or ["wasm", "webgl"]:
                cmd += ["--backend", backend]
            done = subprocess.run(cmd, cwd=bh.WEB, capture_output=True, text=True, timeout=3600)
            if done.returncode != 0:
                sys.exit(f"error: browser benchmark failed: {done.stderr.strip().splitlines()[-1:]}")
            rows = json.loads(done.stdout)
    print(json.dumps(rows), file=sys.stderr)
    failed = [r for r in rows if not r["ran_on"] or not r.get("inference_ms")]
    if failed:  # a page that did not load its model measured nothing: no row of figures for it
        sys.exit("error: " + "; ".join(f"{r['model']} on {r['backend']}: {r['status']}" for r in failed))

    print(f"headless chromium, {args.quantization} weights, {args.loads} cold loads per cell (median), "
          f"{args.repeats} timed predictions on a 240x320 image; ratios against {names[0]}")
    print("| model | backend (ran on) | bytes from CDN | ratio | cold load ms | ratio | inference ms | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    base = {}
    for r in rows:
        key = r["backend"]
        b = base.setdefault(key, r)
        size = statistics.median(r["bytes"])
        inf = r.get("inference_ms")
        ran = r["ran_on"] or "failed"
        inf_txt = f"{inf:.2f} | {inf / b['inference_ms']:.2f}" if inf and b.get("inference_ms") else "n/a | n/a"
        print(f"| {r['model']} | {r['backend']} ({ran}) | {size:.0f} | {size / statistics.median(b['bytes']):.2f} | "
              f"{r['cold_load_median_ms']:.0f} | {r['cold_load_median_ms'] / b['cold_load_median_ms']:.2f} | {inf_txt} |")


if __name__ == "__main__":
    main()
