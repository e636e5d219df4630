"""What a review export must satisfy for the pipeline to take it (web/src/reviewRules.js), run in Node as
the page runs it, against the pipeline's own rules."""
from __future__ import annotations

import base64
import json
import re

import pytest

from components.image_example_gen.lab_sources import IMAGE_EXTENSIONS
from models.features import BASE_SOURCE, LAB_NAME_PATTERN
from testkit import browser as bh

CLASSES = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
NOT_TRAINED = ["OTHER", "NOT_A_WHITE_CELL", "UNSURE"]


def call_rules(expression: str):
    """`expression` (JavaScript, with the module's exports in scope) evaluated in Node; its JSON value."""
    script = ("import * as rules from './src/reviewRules.js';"
              f"const result = (({{ labNameProblem, memberName, verdictForKey, keyAction, verdictAction, labTally, reviewTime }}) => ({expression}))(rules);"
              "process.stdout.write(JSON.stringify(result));")
    return bh.node_json(script)


NAMES = ["mylab", "Lab-2.b_x", "a" * 64, "a" * 65, "My Lab", "", "base", "-lab", ".lab", "lab/x", "Zürich",
         "constructor", "BASE"]


def test_the_page_takes_the_lab_names_the_pipeline_takes():
    problems = call_rules(f"{json.dumps(NAMES)}.map(labNameProblem)")
    for name, problem in zip(NAMES, problems):
        pipeline_takes = bool(re.match(LAB_NAME_PATTERN, name)) and name != BASE_SOURCE
        assert (problem is None) == pipeline_takes, (name, problem)
        assert problem is None or "\n" not in problem


JPEG = bytes([0xFF, 0xD8, 0xFF, 0xE0]) + b"\0" * 20
PNG = bytes([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) + b"\0" * 20
WEBP = b"RIFF\x10\0\0\0WEBPVP8 " + b"\0" * 10
AVIF = b"\0\0\0\x1cftypavif" + b"\0" * 16


def member_names(cases: list[tuple[str, bytes]]) -> list[str]:
    js_cases = ", ".join(f"[{json.dumps(name)}, Uint8Array.from(atob({json.dumps(base64.b64encode(data).decode())}), "
                         "(c) => c.charCodeAt(0)).buffer]" for name, data in cases)
    return call_rules(f"[{js_cases}].map(([name, bytes]) => memberName('MONOCYTE', 'ab'.repeat(32), name, bytes))")


@pytest.mark.parametrize("name, data, expected", [
    ("IMG_0001.jfif", JPEG, "IMG_0001.jfif.jpg"),   # what Windows names a saved JPEG
    ("scan", JPEG, "scan.jpg"),
    ("cell.JPEG", JPEG, "cell.JPEG"),
    ("cell.jpg ", JPEG, "cell.jpg_.jpg"),
    ("Zelle ü 1.PNG", PNG, "Zelle___1.PNG"),
    ("x.jpg", PNG, "x.jpg.png"),                     # named by its bytes, not its name
    ("y", WEBP, "y.webp"),
])
def test_an_image_the_pipeline_reads_is_named_so_that_it_takes_it(name, data, expected):
    (member,) = member_names([(name, data)])
    assert member == f"MONOCYTE/{'ab' * 6}-{expected}"
    assert member.lower().endswith(IMAGE_EXTENSIONS)


def test_an_image_in_a_format_the_pipeline_does_not_read_keeps_its_name():
    # The ingest report then lists it as refused, with its name, instead of guessing a format.
    assert member_names([("x.avif", AVIF)]) == [f"MONOCYTE/{'ab' * 6}-x.avif"]


def verdict(key: str, probabilities: str = "[0.1, 0.1, 0.7, 0.1]"):
    answer = (f"{{className: 'MONOCYTE', probabilities: {probabilities}.map((p) => ({{probability: p}})), "
              "invalid: true}")  # invalid also when only the atypicality is not a number
    return call_rules(f"verdictForKey({json.dumps(key)}, {answer}, {json.dumps(CLASSES)}, {json.dumps(NOT_TRAINED)})")


@pytest.mark.parametrize("key, label", [("Enter", "MONOCYTE"), ("1", "EOSINOPHIL"), ("4", "NEUTROPHIL"),
                                        ("5", "OTHER"), ("6", "NOT_A_WHITE_CELL"), ("7", "UNSURE")])
def test_keys_give_verdicts(key, label):
    assert verdict(key) == {"label": label}


@pytest.mark.parametrize("key", ["0", "8", "a", " ", "Tab", "1.5"])
def test_other_keys_give_none(key):
    assert verdict(key) is None


def test_an_answer_that_is_not_a_number_cannot_be_confirmed():
    # Enter would otherwise save the first class as the reviewer's label of a cell nobody classified.
    result = verdict("Enter", "[NaN, NaN, NaN, NaN]")
    assert "label" not in result and "pick the class" in result["problem"]
    assert verdict("2", "[NaN, NaN, NaN, NaN]") == {"label": "LYMPHOCYTE"}


def test_an_answer_flagged_only_for_its_atypicality_score_can_be_confirmed():
    # The class stands when the probabilities are numbers, whatever the score says.
    assert verdict("Enter") == {"label": "MONOCYTE"}


def key_action(key: str, probabilities: str = "[0.1, 0.1, 0.7, 0.1]", lab_problem: str | None = None,
               kept: str | None = None):
    answer = f"{{className: 'MONOCYTE', probabilities: {probabilities}.map((p) => ({{probability: p}}))}}"
    return call_rules(f"keyAction({json.dumps(key)}, {answer}, {json.dumps(CLASSES)}, {json.dumps(NOT_TRAINED)}, "
                      f"{json.dumps(lab_problem)}, {json.dumps(kept)})")


def test_a_refused_enter_still_moves_on_so_the_next_key_is_for_the_next_image():
    # Keys typed quickly: had the focus stayed, the "2" meant for the next image would label this one.
    refused = key_action("Enter", "[NaN, NaN, NaN, NaN]")
    assert refused["moveOn"] and "label" not in refused and "pick the class" in refused["problem"]
    # The message says how to get back to it: "pick the class" alone had been typed on the next image.
    assert "come back to this image (Up arrow)" in refused["problem"]
    assert key_action("2") == {"label": "LYMPHOCYTE", "moveOn": True}


def test_without_a_lab_name_the_pipeline_takes_no_key_saves_or_moves_on():
    action = key_action("Enter", lab_problem="Name your lab first: the export carries it.")
    assert action == {"problem": "Name your lab first: the export carries it.", "moveOn": False}
    assert key_action("a") is None


def test_a_clicked_verdict_moves_on_as_a_key_does():
    # The page then focuses the next image, not the clicked button, so the keys go on working.
    assert call_rules("verdictAction({label: 'EOSINOPHIL'}, null)") == {"label": "EOSINOPHIL", "moveOn": True}
    assert call_rules("verdictAction({label: 'EOSINOPHIL'}, 'Name your lab first.')") == {
        "problem": "Name your lab first.", "moveOn": False}


def test_the_lab_names_reviews_are_under_are_counted_so_a_mistyped_one_shows():
    """"Delete reviews" deleted every lab's reviews, and the export said only that N cells "under another
    lab name" stayed: a verdict saved under a mistyped name was easy to delete and hard to find."""
    assert call_rules("labTally(['mylab', 'mylba', 'mylab', '', 'mylab'])") == "mylab 3, (no lab name) 1, mylba 1"


def test_enter_on_a_cell_that_has_a_verdict_keeps_it():
    """A batch added again after a reload shows the earlier verdict (a correction, say LYMPHOCYTE); Enter,
    meant to move on, confirmed the model's MONOCYTE with a new stamp, which then won in the pipeline.
    A second Enter on the last image (the focus stays there) did the same to a verdict just given."""
    assert key_action("Enter", kept="LYMPHOCYTE") == {"keep": "LYMPHOCYTE", "moveOn": True}
    assert key_action("Enter", "[NaN, NaN, NaN, NaN]", kept="LYMPHOCYTE") == {"keep": "LYMPHOCYTE", "moveOn": True}
    # Keeping saves nothing, so it needs no lab name; a new verdict still replaces the kept one.
    assert key_action("Enter", lab_problem="Name your lab first.", kept="LYMPHOCYTE")["keep"] == "LYMPHOCYTE"
    assert key_action("3", kept="LYMPHOCYTE") == {"label": "MONOCYTE", "moveOn": True}
    assert key_action("Enter") == {"label": "MONOCYTE", "moveOn": True}


def test_a_new_verdict_is_stamped_after_the_one_it_replaces():
    """The pipeline keeps a cell's latest stamp: a verdict stamped by a clock that ran 6 h ahead, since set
    right, beat the correction given after it."""
    now = "Date.parse('2026-12-07T12:00:00Z')"
    assert call_rules(f"reviewTime({now}, undefined)") == "2026-12-07T12:00:00.000Z"
    assert call_rules(f"reviewTime({now}, '2026-12-07T11:00:00.000Z')") == "2026-12-07T12:00:00.000Z"
    assert call_rules(f"reviewTime({now}, '2026-12-07T18:00:00.000Z')") == "2026-12-07T18:00:00.001Z"
    assert call_rules(f"reviewTime({now}, 'not a time')") == "2026-12-07T12:00:00.000Z"
    # An earlier stamp more than a day ahead is refused by the pipeline: stamped after it, the correction
    # would be refused too.
    assert call_rules(f"reviewTime({now}, '2026-12-09T12:00:00.000Z')") == "2026-12-07T12:00:00.000Z"
