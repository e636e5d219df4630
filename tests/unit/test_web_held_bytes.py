"""How much of the classified images' bytes the page holds until their verdicts (web/src/heldBytes.js),
run in Node as the page runs it."""
from __future__ import annotations

from testkit import browser as bh


def run(body: str):
    return bh.node_json("import { HeldBytes, HELD_BYTES_LIMIT } from './src/heldBytes.js';"
                        f"const result = (() => {{ {body} }})(); process.stdout.write(JSON.stringify(result));")


def test_images_past_the_limit_keep_only_their_files_and_a_saved_verdict_makes_room():
    # Every image's bytes had been held until its verdict: a page given thousands of camera fields ran
    # out of memory.
    taken = run("""
        const held = new HeldBytes(10);
        const b = (n) => new ArrayBuffer(n);
        const first = held.take(b(6)), second = held.take(b(5)), third = held.take(b(4));
        held.release(first);
        const fourth = held.take(b(5));
        held.release(null);
        return [first !== null, second !== null, third !== null, fourth !== null, held.held];""")
    assert taken == [True, False, True, True, 9]


def test_the_page_holds_up_to_256_mib():
    assert run("return HELD_BYTES_LIMIT;") == 256 * 2**20
