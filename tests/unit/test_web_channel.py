"""What the page makes of the channel pointer for the version it holds (web/src/channel.js), run in Node as
the page runs it, against the publisher's own rule for withdrawn versions."""
from __future__ import annotations

import json
import subprocess

from components.tfjs_publisher import publish
from testkit import browser as bh


def call_channel(expression: str):
    script = ("import * as channel from './src/channel.js';"
              f"const result = (({{ withdrawn, channelNews }}) => ({expression}))(channel);"
              "process.stdout.write(JSON.stringify(result));")
    done = subprocess.run(["node", "--input-type=module", "-e", script], cwd=bh.WEB,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


POINTERS = [{"version": "7", "pinned": True, "rolled_back_from": "8"},
            {"version": "7", "pinned": False, "rolled_back_from": "9"},
            {"version": "10", "pinned": False, "rolled_back_from": "8"},
            {"version": "1796523145", "pinned": True, "rolled_back_from": "1796524779"},
            {"version": "8", "pinned": False}]
VERSIONS = ["6", "7", "8", "9", "10", "11", "1796523145", "1796523867", "1796524779"]


def test_a_version_is_withdrawn_exactly_when_the_publisher_keeps_the_channel_from_it():
    seen = call_channel(f"{json.dumps(POINTERS)}.map((p) => {json.dumps(VERSIONS)}.map((v) => withdrawn(v, p)))")
    for pointer, row in zip(POINTERS, seen):
        for version, answer in zip(VERSIONS, row):
            newer = int(version) > int(pointer["version"])
            assert answer == (newer and publish.rolled_back(version, pointer)), (version, pointer)


def test_an_open_page_is_told_of_a_rollback_and_of_a_newer_version():
    news = call_channel('[channelNews("8", {version: "7", rolled_back_from: "8"}), '
                        'channelNews("8", {version: "9"}), channelNews("8", {version: "8"})]')
    assert news[0]["withdrawn"] and "Version 8 was withdrawn" in news[0]["text"] and "version 7" in news[0]["text"]
    assert news[1] == {"withdrawn": False, "text": "Version 9 is published: reload the page to use it."}
    assert news[2] is None
