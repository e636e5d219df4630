"""The model server's clock as the page reads it (web/src/clock.js), run in Node as the page runs it."""
from __future__ import annotations

from testkit import browser as bh


def call_clock(expression: str):
    script = ("import * as clock from './src/clock.js';"
              f"const result = (({{ serverOffsetMs, stampCorrectionMs, clockNote }}) => ({expression}))(clock);"
              "process.stdout.write(JSON.stringify(result));")
    return bh.node_json(script)


SENT = "Date.parse('2026-12-07T12:00:00Z')"


def test_the_offset_is_read_from_the_date_and_age_of_the_answer():
    # A workstation 6 h ahead: the server dated its answer 06:00:00 (plus up to a second); 200 ms round trip.
    offset = call_clock(f"serverOffsetMs('Mon, 07 Dec 2026 06:00:00 GMT', null, {SENT}, {SENT} + 200)")
    assert offset == -6 * 3600_000 + 500 - 100
    # A cache held the answer 30 s: the server's clock is 30 s later than its Date says.
    aged = call_clock(f"serverOffsetMs('Mon, 07 Dec 2026 06:00:00 GMT', '30', {SENT}, {SENT} + 200)")
    assert aged == offset + 30_000


def test_no_date_leaves_the_offset_unknown():
    assert call_clock(f"[null, '', 'yesterday'].map((d) => serverOffsetMs(d, null, {SENT}, {SENT}))") == [None] * 3


def test_only_an_offset_past_the_tolerance_corrects_the_stamps_and_is_shown():
    assert call_clock("[null, 90_000, -110_000].map(stampCorrectionMs)") == [0, 0, 0]
    assert call_clock("[-6 * 3600_000, 3 * 60_000].map(stampCorrectionMs)") == [-6 * 3600_000, 3 * 60_000]
    assert call_clock("clockNote(0)") is None
    ahead = call_clock("clockNote(-(6 * 3600_000 + 5 * 60_000))")
    assert ahead.startswith("This computer's clock is 6 h 5 min ahead of the model server's") and "\n" not in ahead
    assert "3 min behind" in call_clock("clockNote(3 * 60_000)")
