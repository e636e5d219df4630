"""The web client's answer record and review flags (web/src/inference.js), run in Node as the client runs them."""
from __future__ import annotations

import json

import pytest

from testkit import browser as bh

CLASSES = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
# counts[actual][predicted]: 4 monocytes, one called NEUTROPHIL; no lymphocyte image at all.
MATRIX = [[9, 0, 0, 1],
          [0, 0, 0, 0],
          [0, 0, 3, 1],
          [2, 0, 0, 18]]


def call_inference(function: str, arguments: str):
    """web/src/inference.js's `function` called in Node with `arguments` (JavaScript source: JSON has
    no NaN); its JSON result."""
    script = (f"import {{ {function} }} from './src/inference.js';"
              f"process.stdout.write(JSON.stringify({function}({arguments})));")
    return bh.node_json(script)


def answer_record(matrix, class_id: int):
    return call_inference("answerRecord", f"{json.dumps(matrix)}, {json.dumps(CLASSES)}, {class_id}")


def test_an_answer_is_scored_by_the_share_of_each_actual_class_given_it():
    record = answer_record(MATRIX, CLASSES.index("NEUTROPHIL"))
    assert record["images"] == 34
    assert record["recall"] == pytest.approx(18 / 20)
    # Commonest first; a share of the actual class, not of the answers (prevalence-free).
    assert record["alsoGivenTo"] == [{"name": "MONOCYTE", "share": 0.25},
                                     {"name": "EOSINOPHIL", "share": 0.1}]


def test_a_class_without_evaluation_images_has_no_recall():
    record = answer_record(MATRIX, CLASSES.index("LYMPHOCYTE"))
    assert record["recall"] is None and record["alsoGivenTo"] == []


@pytest.mark.parametrize("matrix", [None, [], [[1, 2], [3, 4]], [[1, 0, 0, 0]] * 3 + [[1, 0]]])
def test_no_record_without_a_matrix_that_fits_the_classes(matrix):
    assert answer_record(matrix, 0) is None


def interpret(probabilities: str, atypicality: str = "null"):
    return call_inference("interpret", f"{probabilities}, {json.dumps(CLASSES)}, 0.8, {atypicality}")


@pytest.mark.parametrize("probabilities, atypicality", [("[NaN, NaN, NaN, NaN]", "null"),
                                                        ("[0.97, NaN, 0.01, 0.02]", "0.2"),
                                                        ("[0.97, 0.01, 0.01, 0.01]", "NaN")])
def test_an_answer_that_is_not_a_number_is_flagged_for_review(probabilities, atypicality):
    r = interpret(probabilities, atypicality)
    assert r["invalid"] and r["needsReview"]


def test_a_confident_typical_answer_is_not_flagged():
    r = interpret("[0.97, 0.01, 0.01, 0.01]", "0.2")
    assert not r["invalid"] and not r["needsReview"] and r["className"] == "EOSINOPHIL"


@pytest.mark.parametrize("probabilities", ["[NaN, NaN, NaN, NaN]", "[0.97, NaN, 0.01, 0.02]"])
def test_probabilities_that_are_not_numbers_name_no_class(probabilities):
    """The page had shown "EOSINOPHIL (NaN %)" and the export recorded EOSINOPHIL as the model's answer."""
    r = interpret(probabilities, "0.2")
    assert r["className"] is None and r["classId"] is None and r["confidence"] is None


def test_an_atypicality_that_is_not_a_number_keeps_the_class():
    r = interpret("[0.97, 0.01, 0.01, 0.01]", "NaN")
    assert r["invalid"] and r["className"] == "EOSINOPHIL"
