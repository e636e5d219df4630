"""Renders infra/nginx/cdn.conf.template into a runnable nginx configuration.

    python -m infra.nginx.render --origin-root DIR --listen 127.0.0.1:8080 --allowed-origin http://localhost:5173 \
        --runtime-dir /tmp/bloodcell-cdn > cdn.conf
    nginx -e /tmp/bloodcell-cdn/error.log -c $PWD/cdn.conf
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import re
import string
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "cdn.conf.template"
# Browsers compare Access-Control-Allow-Origin with their Origin header exactly, and send the host in
# lower case, without a trailing dot, and without the scheme's default port.
ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<host>[a-z0-9-]+(\.[a-z0-9-]+)*|\[(?P<ip6>[0-9a-f:.]+)\])(:(?P<port>[1-9][0-9]{0,4}))?")
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_problem(origin: str) -> str | None:
    if origin == "*":
        return None
    match = ORIGIN.fullmatch(origin)
    if not match:
        return "scheme://host[:port] in lower case, with no path or trailing slash"
    if match["ip6"] is not None:
        try:
            if str(ipaddress.IPv6Address(match["ip6"])) != match["ip6"]:
                return f"browsers write that address [{ipaddress.IPv6Address(match['ip6'])}]"
        except ValueError:
            return f"[{match['ip6']}] is not an IPv6 address"
    port = match["port"]
    if port is not None and not int(port) < 65536:
        return f"port {port} is not one"
    if port is not None and int(port) == DEFAULT_PORTS[match["scheme"]]:
        return f"browsers leave out {match['scheme']}'s default port {port}"
    return None


def render(origin_root: str, listen: str, allowed_origin: str, runtime_dir: str) -> str:
    if "://" in origin_root:
        raise ValueError(f"--origin-root must be a local folder (nginx serves files); got {origin_root}: "
                         f"mount the bucket (e.g. gcsfuse) and pass the mount point")
    problem = origin_problem(allowed_origin)
    if problem:
        raise ValueError(f"--allowed-origin must be the page's origin as browsers send it (or *): {problem}; "
                         f"got {allowed_origin!r}")
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(runtime_dir, sub), exist_ok=True)
    return string.Template(TEMPLATE.read_text()).substitute(
        ORIGIN_ROOT=os.path.abspath(origin_root), LISTEN=listen, ALLOWED_ORIGIN=allowed_origin,
        RUNTIME_DIR=os.path.abspath(runtime_dir))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--origin-root", required=True)
    parser.add_argument("--listen", default="127.0.0.1:8080")
    parser.add_argument("--allowed-origin", default="http://localhost:5173")
    parser.add_argument("--runtime-dir", required=True)
    args = parser.parse_args()
    try:
        print(render(args.origin_root, args.listen, args.allowed_origin, args.runtime_dir))
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
