"""Command line for the served model.

    python -m serving.cli predict --server HOST:PORT IMAGE...      # gRPC (port 8500)
    python -m serving.cli predict --rest http://HOST:8501 IMAGE...  # REST
    python -m serving.cli status   --server HOST:PORT
    python -m serving.cli metadata --server HOST:PORT

predict prints a line per image: file, class, top probability, all probabilities, atypicality, and
why a person should review it (unlike the training images, or a top probability under
--review-below), as the web client flags it.
"""
from __future__ import annotations

import argparse
import json
import sys

from models.features import DEFAULT_REVIEW_THRESHOLD
from serving.client import DEFAULT_MAX_IMAGE_BYTES, GrpcClient, RestClient, ServingError


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m serving.cli", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["predict", "status", "metadata"])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", help="gRPC target HOST:PORT")
    where.add_argument("--rest", help="REST base URL, e.g. http://localhost:8501")
    parser.add_argument("images", nargs="*", help="predict: image files")
    parser.add_argument("--model", default="bloodcell", help="model name (default: %(default)s)")
    parser.add_argument("--version", type=int, help="a specific model version (default: the latest)")
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline per request, seconds")
    parser.add_argument("--batch-size", type=int, default=32, help="images per request")
    parser.add_argument("--max-image-mb", type=float, default=DEFAULT_MAX_IMAGE_BYTES / 2**20)
    parser.add_argument("--tls", action="store_true", help="gRPC over TLS")
    parser.add_argument("--ca-cert", help="PEM file of the CA that signed the server's certificate")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--review-below", type=float, default=DEFAULT_REVIEW_THRESHOLD,
                        help="flag a top probability under this for review (default: %(default)s, the web "
                             "client's as the shipped configuration sets it)")
    return parser.parse_args(argv)


def review_reasons(confidence: float, atypicality: float, review_below: float) -> list[str]:
    """Why a person should look at this image (the web client's two reasons); empty: no review."""
    reasons = []
    if atypicality > 1:
        reasons.append("UNLIKE THE TRAINING IMAGES")
    if confidence < review_below:
        reasons.append("LOW CONFIDENCE")
    return reasons


def run(args) -> int:
    limit = int(args.max_image_mb * 2**20)
    if args.server:
        roots = open(args.ca_cert, "rb").read() if args.ca_cert else None
        client = GrpcClient(args.server, args.model, timeout_s=args.timeout, tls=args.tls or bool(roots),
                            root_certificates=roots, batch_size=args.batch_size, max_image_bytes=limit)
    else:
        client = RestClient(args.rest, args.model, timeout_s=args.timeout, batch_size=args.batch_size,
                            max_image_bytes=limit)
    if args.command == "predict":
        if not args.images:
            raise ServingError("predict needs at least one image file")
        images = []
        for path in args.images:
            try:
                with open(path, "rb") as f:
                    images.append(f.read())
            except OSError as err:
                raise ServingError(f"cannot read {path}: {err.strerror}") from None
        review_below = args.review_below
        predictions = client.predict(images, args.version, names=args.images)
        if args.json:
            print(json.dumps([{"image": p, "class_name": r.class_name, "class_id": r.class_id,
                               "probabilities": r.probabilities, "atypicality": r.atypicality,
                               "review": review_reasons(r.confidence, r.atypicality, review_below)}
                              for p, r in zip(args.images, predictions)]))
        for path, r in zip(args.images, predictions) if not args.json else ():
            probs = " ".join(f"{p:.3f}" for p in r.probabilities)
            reasons = review_reasons(r.confidence, r.atypicality, review_below)
            review = f"\t{', '.join(reasons)}: review" if reasons else ""
            print(f"{path}\t{r.class_name}\t{r.confidence:.3f}\t[{probs}]\tatypicality {r.atypicality:.2f}{review}")
    elif args.command == "status":
        for version, state in client.status(args.version):
            print(f"{args.model}\tversion {version}\t{state}")
    else:
        if not isinstance(client, GrpcClient):
            raise ServingError("metadata is available over gRPC (--server)")
        print(json.dumps(client.metadata(args.version), indent=2))
    return 0


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except ServingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
