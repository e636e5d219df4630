"""Command line for the served model.

    python -m serving.cli predict --server HOST:PORT IMAGE...      # gRPC (port 8500)
    python -m serving.cli predict --rest http://HOST:8501 IMAGE...  # REST
    python -m serving.cli status   --server HOST:PORT
    python -m serving.cli metadata --server HOST:PORT             # or --rest

predict prints a line per image: file, class, top probability, all probabilities, atypicality, and
why a person should review it (unlike the training images, or a top probability under
--review-below), as the web client flags it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys

from models.features import DEFAULT_REVIEW_THRESHOLD
from serving.client import (DEFAULT_MAX_IMAGE_BYTES, MAX_GRPC_REQUEST_BYTES, MAX_REST_REQUEST_BYTES, GrpcClient,
                            NotAnswered, RestClient, ServingError, batches, size_problem)
from serving.warmup import MAX_BATCH_SIZE


def positive(kind, at_most: float = math.inf):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if not 0 < value <= at_most or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be above 0{f' and at most {at_most:g}' if at_most < math.inf else ''}"
                                             f", not {text}")
        return value
    return parse


def probability(text: str) -> float:
    # NaN or under 0 would never flag an answer for review; over 1 (a percent) would flag every one.
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a probability from 0 to 1, not {text}")
    return value


def batch_size(text: str) -> int:
    """A batch the model server takes: over its max_batch_size it refuses the whole request."""
    value = positive(int)(text)
    if value > MAX_BATCH_SIZE:
        raise argparse.ArgumentTypeError(f"at most {MAX_BATCH_SIZE}, the model server's max_batch_size "
                                         f"(serving/config/batching.config), not {text}")
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m serving.cli", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["predict", "status", "metadata"])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", help="gRPC target HOST:PORT")
    where.add_argument("--rest", help="REST base URL, e.g. http://localhost:8501")
    parser.add_argument("images", nargs="*", help="predict: image files")
    parser.add_argument("--model", default="bloodcell", help="model name (default: %(default)s)")
    parser.add_argument("--version", type=int, help="a specific model version (default: the latest)")
    # A day at most: past threading's longest wait the REST deadline's timer fails.
    parser.add_argument("--timeout", type=positive(float, at_most=86400), default=10.0,
                        help="deadline per request, retries included, seconds")
    parser.add_argument("--batch-size", type=batch_size, default=MAX_BATCH_SIZE,
                        help=f"images per request, at most {MAX_BATCH_SIZE}")
    parser.add_argument("--max-image-mb", type=positive(float), default=DEFAULT_MAX_IMAGE_BYTES / 2**20)
    parser.add_argument("--tls", action="store_true", help="gRPC over TLS")
    parser.add_argument("--ca-cert", help="PEM file of the CA that signed the server's certificate")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--review-below", type=probability, default=DEFAULT_REVIEW_THRESHOLD,
                        help="flag a top probability under this for review (default: %(default)s, the web "
                             "client's as the shipped configuration sets it)")
    return parser.parse_args(argv)


def review_reasons(confidence: float, atypicality: float, review_below: float,
                   probabilities: list[float] | None = None) -> list[str]:
    """Why a person should look at this image (the web client's reasons); empty: no review."""
    numbers = [confidence, atypicality, *(probabilities or [])]
    if not all(math.isfinite(x) for x in numbers):
        return ["NO VALID ANSWER"]  # NaN compares false with every threshold: never show it as confident
    reasons = []
    if atypicality > 1:
        reasons.append("UNLIKE THE TRAINING IMAGES")
    if confidence < review_below:
        reasons.append("LOW CONFIDENCE")
    return reasons


def read_ca_cert(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise UsageError(f"cannot read --ca-cert {path}: {err.strerror}") from None


class UsageError(ValueError):
    """A bad argument found after parsing (exit 2, as argparse's own)."""


def _number(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON has no NaN: a consumer's parser would fail on it


def answered(probabilities: list[float]) -> bool:
    """Whether the probabilities name a class: all numbers (an atypicality that is not one flags the
    answer but leaves its class, as in the web client)."""
    return all(math.isfinite(p) for p in probabilities)


def json_row(path: str, r, reasons: list[str]) -> dict:
    """An answer as JSON: null for every number that is not one, and no class unless the probabilities are numbers."""
    valid = answered(r.probabilities)
    return {"image": path, "class_name": r.class_name if valid else None, "class_id": r.class_id if valid else None,
            "probabilities": [_number(p) for p in r.probabilities], "atypicality": _number(r.atypicality),
            "review": reasons}


def _read_images(paths: list[str], max_image_bytes: int) -> tuple[list[bytes], list[str], int]:
    """(images, their paths, how many could not be read), an `error:` line for each of those."""
    images, readable, failed = [], [], 0
    for path in paths:
        try:
            with open(path, "rb") as f:
                # Sized before it is read: a huge file is refused without filling the memory.
                problem = size_problem(path, os.fstat(f.fileno()).st_size, max_image_bytes)
                if problem:
                    print(f"error: {problem}", file=sys.stderr)
                    failed += 1
                    continue
                images.append(f.read())
            readable.append(path)
        except OSError as err:
            print(f"error: cannot read {path}: {err.strerror}", file=sys.stderr)
            failed += 1
    return images, readable, failed


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:  # said when it is read
        return 0


def predict_lines(client, args) -> int:
    """Prints a line per image that got an answer, an `error:` line per image that did not; 1 if any did
    not. Images are read and sent a request's worth at a time, and each answer is printed as it comes
    (--json: one array at the end), so a run stopped half-way has printed what it received."""
    if not args.images:
        raise UsageError("predict needs at least one image file")
    rows: list[dict] = []
    try:
        failed, not_answered, cause = _predict_chunks(client, args, rows)
    finally:
        if args.json:  # interrupted too: the answers received so far, as the text mode has printed them
            print(json.dumps(rows, allow_nan=False))
    if cause is not None:  # the server's failure, once: the answers above stand
        print(f"error: {cause} ({not_answered} of {len(args.images)} images not answered)", file=sys.stderr)
    return 1 if failed or not_answered else 0


def _predict_chunks(client, args, rows: list) -> tuple[int, int, ServingError | None]:
    """predict_lines' work, a request's worth of images at a time (by the files' sizes: each chunk is one
    request, unless a file grew since); JSON rows go into `rows`. Returns
    (images failed, images not answered, the server's failure or None)."""
    failed, not_answered, cause = 0, 0, None
    for part in batches([_file_size(path) for path in args.images], client.batch_size, client.max_request_bytes):
        chunk = [args.images[i] for i in part]
        if cause is not None:  # the server failed: nothing more is read or sent
            not_answered += len(chunk)
            continue
        images, readable, unread = _read_images(chunk, client.max_image_bytes)
        failed += unread
        for path, r in zip(readable, client.predict_each(images, args.version, names=readable)):
            if isinstance(r, NotAnswered):
                not_answered, cause = not_answered + 1, r.cause
                continue
            if isinstance(r, ServingError):
                print(f"error: {r}", file=sys.stderr)
                failed += 1
                continue
            reasons = review_reasons(r.confidence, r.atypicality, args.review_below, r.probabilities)
            if args.json:
                rows.append(json_row(path, r, reasons))
                continue
            probs = " ".join(f"{p:.3f}" for p in r.probabilities)
            review = f"\t{', '.join(reasons)}: review" if reasons else ""
            name = r.class_name if answered(r.probabilities) else "-"
            print(f"{path}\t{name}\t{r.confidence:.3f}\t[{probs}]\tatypicality {r.atypicality:.2f}{review}", flush=True)
    return failed, not_answered, cause


def run(args) -> int:
    carried = MAX_GRPC_REQUEST_BYTES if args.server else MAX_REST_REQUEST_BYTES
    if args.max_image_mb * 2**20 > carried:
        raise UsageError(f"--max-image-mb {args.max_image_mb:g} is over what one request carries "
                         f"({carried / 2**20:g} MiB {'over gRPC' if args.server else 'over REST'})")
    limit = int(args.max_image_mb * 2**20)
    roots = read_ca_cert(args.ca_cert)
    if args.server:
        client = GrpcClient(args.server, args.model, timeout_s=args.timeout, tls=args.tls or bool(roots),
                            root_certificates=roots, batch_size=args.batch_size, max_image_bytes=limit)
    else:
        scheme = args.rest.split("://", 1)[0].lower() if "://" in args.rest else ""
        if scheme not in ("http", "https"):
            raise UsageError(f"--rest needs a URL starting http:// or https://, not '{args.rest}'")
        if scheme == "http" and (args.tls or roots):
            raise UsageError("--tls and --ca-cert over REST need an https:// URL: the request would go in plain text")
        client = RestClient(args.rest, args.model, timeout_s=args.timeout, batch_size=args.batch_size,
                            max_image_bytes=limit, ca_cert=args.ca_cert)
    if args.command == "predict":
        return predict_lines(client, args)
    if args.command == "status":
        statuses = client.status(args.version)
        for s in statuses:
            print(f"{args.model}\tversion {s.version}\t{s.state}" + (f"\t{s.error}" if s.error else ""))
        if not any(s.state == "AVAILABLE" for s in statuses):
            print(f"error: no version of {args.model} is available", file=sys.stderr)
            return 1
        return 0
    print(json.dumps(client.metadata(args.version), indent=2))
    return 0


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("error: interrupted: the answers above are the ones received", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to say to it
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ServingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
