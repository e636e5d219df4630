"""When the Trainer fine-tunes the blessed model and when it trains from the start (models/trainer/run_fn.py)."""
from __future__ import annotations

import json

import pytest

from models.features import TRAINING_RECORD_FILE
from models.trainer import run_fn
from models.trainer.params import TrainerParams
from models.trainer.record import UnreadableRecord

PARAMS = TrainerParams(class_names=("A", "B"), image_size=80, stain_normalisation=False, model="default", epochs=1,
                       batch_size=8, learning_rate=1e-3, early_stopping_patience=0, average_symmetries=True, seed=1,
                       serving_model_name="m", warmup_images=())


def _blessed(tmp_path, **record):
    (tmp_path / "assets.extra").mkdir(parents=True)
    (tmp_path / TRAINING_RECORD_FILE).write_text(json.dumps({**run_fn.model_identity(PARAMS), **record}))
    return str(tmp_path)


def test_a_blessed_model_built_the_same_way_is_adapted(tmp_path):
    assert run_fn.same_model(_blessed(tmp_path, mode="trained"), PARAMS)


def test_another_architecture_or_input_size_trains_from_the_start(tmp_path):
    assert not run_fn.same_model(_blessed(tmp_path / "a", model="tutorial_cnn"), PARAMS)
    assert not run_fn.same_model(_blessed(tmp_path / "b", image_size=96), PARAMS)
    assert not run_fn.same_model(_blessed(tmp_path / "c", class_names=["A", "B", "C"]), PARAMS)


def test_a_model_from_before_the_record_is_tried(tmp_path):
    assert run_fn.same_model(str(tmp_path), PARAMS)


@pytest.mark.parametrize("damaged", ['{"mode": "adapted", "labs": ["tecom"], "lab_eval_fraction": 0.3', '["tecom"]'])
def test_a_record_that_is_there_but_unreadable_fails_the_checks_instead_of_passing_them(tmp_path, damaged):
    # Read as "a model from before records", a damaged record had let a run drop the model's lab and
    # change its split, and had adapted a model of other classes.
    (tmp_path / "assets.extra").mkdir()
    (tmp_path / TRAINING_RECORD_FILE).write_text(damaged)
    checks = [lambda: run_fn.same_model(str(tmp_path), PARAMS),
              lambda: run_fn.refuse_labs_left_behind(str(tmp_path), set(), ()),
              lambda: run_fn.refuse_other_split(str(tmp_path), set(), 0.2, ())]
    for check in checks:
        with pytest.raises(UnreadableRecord, match=r"^the training record .*training\.json (cannot be read|is not)"):
            check()


def test_a_base_model_whose_weights_cannot_be_read_fails_the_run_instead_of_training_from_the_start(tmp_path):
    import tensorflow as tf

    from models.trainer import architectures

    model = architectures.build_model("default", PARAMS.image_size, PARAMS.num_classes)
    with pytest.raises(tf.errors.NotFoundError):  # a missing or unreachable variables file is not a mismatch
        run_fn.load_base_weights(model, str(tmp_path / "gone"))
    blessed = _weights(tmp_path / "damaged", "default")
    (tmp_path / "damaged" / "variables" / "variables.index").write_bytes(b"not a checkpoint index")
    with pytest.raises(tf.errors.OpError):
        run_fn.load_base_weights(model, blessed)


def _weights(tmp_path, model_name):
    from models.trainer import architectures

    architectures.build_model(model_name, PARAMS.image_size, PARAMS.num_classes).save_weights(
        str(tmp_path / "variables" / "variables"))
    return str(tmp_path)


def _batches():
    import numpy as np
    import tensorflow as tf

    images = np.random.default_rng(0).random((8, 80, 80, 3), dtype=np.float32)
    return tf.data.Dataset.from_tensor_slices((images, np.arange(8) % 2)).batch(4).repeat()


def test_weights_that_do_not_fit_fall_back_to_training_and_nothing_else_does(tmp_path, monkeypatch):
    # Only the blessed model's weights not fitting means "train from the start"; a failure while
    # fine-tuning (out of memory, a corrupt record) fails the run instead of being read as that.
    import pytest
    import tensorflow as tf

    params = TrainerParams(**{**PARAMS.__dict__, "adapt_steps": 1})
    with pytest.raises(run_fn.BaseModelMismatch):
        run_fn.adapt(params, _weights(tmp_path / "other", "tutorial_cnn"), _batches(), _batches().take(1), str(tmp_path))

    def out_of_memory(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    monkeypatch.setattr(run_fn.keras.Model, "fit", out_of_memory)
    with pytest.raises(tf.errors.ResourceExhaustedError):
        run_fn.adapt(params, _weights(tmp_path / "same", "default"), _batches(), _batches().take(1), str(tmp_path))
    assert not issubclass(tf.errors.ResourceExhaustedError, run_fn.BaseModelMismatch)


def test_a_lab_the_blessed_model_learned_from_must_be_in_the_data_unless_retired(tmp_path):
    """On Kubeflow nothing checked it: with the labs' prefix empty or a lab's sub-prefix gone, the Trainer
    trained from the start and the Evaluator, finding no cells of the lab, gated on the base alone."""
    import pytest

    blessed = _blessed(tmp_path / "new", mode="adapted", labs=["tecom", "other"],
                       lab_train_cells_per_lab={"tecom": 50})
    with pytest.raises(run_fn.LabsLeftBehind, match="tecom") as refused:
        run_fn.refuse_labs_left_behind(blessed, {"other"}, ())
    # Quoted: YAML reads a lab named 2024 or on as a number or a boolean, and the line it suggests fails.
    assert 'labs.retired: ["tecom"]' in str(refused.value) and "\n" not in str(refused.value)
    run_fn.refuse_labs_left_behind(blessed, {"other"}, ("tecom",))
    run_fn.refuse_labs_left_behind(blessed, {"tecom", "other", "third"}, ())
    # A record from before "labs": the labs it adapted to or left out.
    older = _blessed(tmp_path / "old", mode="adapted", lab_train_cells_per_lab={"tecom": 50},
                     labs_not_trained_on={"onecls": "one class"})
    with pytest.raises(run_fn.LabsLeftBehind, match="onecls, tecom"):
        run_fn.refuse_labs_left_behind(older, set(), ())
    # A lab of one class only was gated on, not learned from: the error had said "learned from".
    gated = _blessed(tmp_path / "gated", mode="trained", labs=["trial"], labs_not_trained_on={"trial": "one class"})
    with pytest.raises(run_fn.LabsLeftBehind) as refused:
        run_fn.refuse_labs_left_behind(gated, set(), ())
    assert str(refused.value).startswith("the last blessed model was trained or gated on lab(s) trial,")
    run_fn.refuse_labs_left_behind(str(tmp_path / "no record"), set(), ())


def test_a_lab_split_other_than_the_blessed_models_is_refused_by_the_trainer(tmp_path):
    """On Kubeflow nothing checked it: a changed labs.eval_fraction moved cells the blessed model's lineage
    had trained on to the held-out side, where the lab's gate scored them."""
    import pytest

    blessed = _blessed(tmp_path / "new", mode="adapted", labs=["tecom"], lab_eval_fraction=0.3)
    with pytest.raises(run_fn.LabSplitChanged, match="labs.eval_fraction is 0.2, .* split with 0.3") as refused:
        run_fn.refuse_other_split(blessed, {"tecom"}, 0.2, ())
    assert "\n" not in str(refused.value)
    run_fn.refuse_other_split(blessed, {"tecom"}, 0.3, ())
    # The new split left the lab no training cell: retiring it must not let the split through ...
    with pytest.raises(run_fn.LabSplitChanged):
        run_fn.refuse_other_split(blessed, set(), 0.2, ())
    with pytest.raises(run_fn.LabSplitChanged):
        run_fn.refuse_other_split(blessed, {"tecom"}, 0.2, ("tecom",))  # retired but still read
    run_fn.refuse_other_split(blessed, {"other"}, 0.2, ("tecom",))  # ... retired and gone: nothing to keep apart
    run_fn.refuse_other_split(_blessed(tmp_path / "old", mode="adapted", labs=["tecom"]), {"tecom"}, 0.2, ())  # not recorded


def test_the_trainer_is_told_the_retired_labs():
    from pipeline.config import load_config
    from pipeline.pipeline import trainer_params

    assert trainer_params(load_config(overrides=["labs.retired=[tecom]"])).retired_labs == ("tecom",)
    assert trainer_params(load_config(overrides=["labs.eval_fraction=0.2"])).lab_eval_fraction == 0.2


def _run_fn_without_training(tmp_path, monkeypatch, base_model, params=PARAMS, lab_cells=None, fitted=None):
    """run_fn itself, with the transform output, training, review score and export replaced: what is left
    is its checks of the blessed model and the training record it writes. `fitted` gets the review
    score's arguments."""
    from types import SimpleNamespace

    monkeypatch.setattr(run_fn.tft, "TFTransformOutput", lambda path: None)
    monkeypatch.setattr(run_fn.data, "lab_records", lambda *a: None)
    monkeypatch.setattr(run_fn.data, "adaptable_labs", lambda *a: (lab_cells or {}, {}))
    monkeypatch.setattr(run_fn.data, "make_dataset", lambda *a: None)
    monkeypatch.setattr(run_fn, "train", lambda *a: "model")
    monkeypatch.setattr(run_fn.review_score, "fit_review_score", lambda *a: (fitted if fitted is not None else []).append(a))
    monkeypatch.setattr(run_fn.data, "make_lab_dataset", lambda cells, *a: ("lab cells of", sorted(cells)))
    monkeypatch.setattr(run_fn.export, "save_model", lambda model, out, *a: (tmp_path / "out" / "assets.extra").mkdir(parents=True))
    fn_args = SimpleNamespace(custom_config=params.to_custom_config(), transform_output="", train_files=[],
                              eval_files=[], base_model=base_model, model_run_dir=str(tmp_path / "logs"),
                              serving_model_dir=str(tmp_path / "out"))
    run_fn.run_fn(fn_args)
    return json.loads((tmp_path / "out" / TRAINING_RECORD_FILE).read_text())


def test_run_fn_refuses_another_split_and_records_its_own(tmp_path, monkeypatch):
    """The split check and the record field it reads were each tested alone; this is their use in run_fn."""
    import dataclasses

    import pytest

    tecom = {"tecom": [[b"a"], [b"b"]]}
    blessed = _blessed(tmp_path / "blessed", mode="adapted", labs=["tecom"], lab_eval_fraction=0.3)
    # Both checks would refuse (the lab has no cell in this run, and the split changed): the split's reason is given.
    with pytest.raises(run_fn.LabSplitChanged):
        _run_fn_without_training(tmp_path, monkeypatch, blessed, dataclasses.replace(PARAMS, lab_eval_fraction=0.2))
    record = _run_fn_without_training(tmp_path, monkeypatch, None, dataclasses.replace(PARAMS, lab_eval_fraction=0.2),
                                      lab_cells=tecom)
    assert record["lab_eval_fraction"] == 0.2 and record["labs"] == ["tecom"] and record["mode"] == "trained"


def test_a_model_trained_from_the_start_with_lab_cells_gets_their_review_means(tmp_path, monkeypatch):
    """Trained from the start on base and lab cells (a first run with labs, a fresh start, a new
    architecture), the review score had the base images' class means only: nearly every cell of the
    lab it had just learned read as unlike the training images, and was flagged."""
    fitted = []
    record = _run_fn_without_training(tmp_path, monkeypatch, None, lab_cells={"tecom": [[b"a"], [b"b"]]}, fitted=fitted)
    assert record["mode"] == "trained"
    [args] = fitted
    assert args[-1] == ("lab cells of", ["tecom"])
    fitted.clear()
    _run_fn_without_training(tmp_path / "none", monkeypatch, None, fitted=fitted)  # no lab: no lab means
    assert fitted[0][-1] is None


def test_a_training_or_fine_tune_whose_loss_becomes_nan_fails_in_one_line(tmp_path):
    # It had exported a model of NaN weights (NaN probabilities; the tutorial CNN, with no review score to
    # trip over, could be blessed where no model was blessed before).
    import numpy as np
    import tensorflow as tf

    images = np.full((8, 80, 80, 3), np.nan, np.float32)
    nan_batches = tf.data.Dataset.from_tensor_slices((images, np.arange(8) % 2)).batch(4)
    params = TrainerParams(**{**PARAMS.__dict__, "adapt_steps": 1})
    with pytest.raises(run_fn.TrainingDiverged, match=r"^training diverged .*lower training\.learning_rate$"):
        run_fn.train(params, nan_batches, nan_batches, str(tmp_path / "t"))
    # The tutorial CNN trains at its recipe's fixed rate: lowering training.learning_rate changed nothing.
    tutorial = TrainerParams(**{**params.__dict__, "model": "tutorial_cnn", "epochs": 1})
    with pytest.raises(run_fn.TrainingDiverged) as diverged:
        run_fn.train(tutorial, nan_batches, nan_batches, str(tmp_path / "tutorial"))
    assert "lower training.learning_rate" not in str(diverged.value) and "fixed rate" in str(diverged.value)
    # Stopped on a NaN loss with finite weights (early stopping restores an earlier epoch's; on a GPU a
    # loss-scaling optimizer skips the step), the run fails all the same.
    from models.trainer import architectures

    model = architectures.build_model("default", PARAMS.image_size, PARAMS.num_classes)
    stop = run_fn.StopOnNaN()
    stop.set_model(model)
    run_fn.refuse_non_finite(model, stop, "training.learning_rate")  # a finite model, not stopped: fine
    stop.on_batch_end(0, {"loss": float("nan")})
    with pytest.raises(run_fn.TrainingDiverged):
        run_fn.refuse_non_finite(model, stop, "training.learning_rate")
    with pytest.raises(run_fn.TrainingDiverged, match=r"lower labs\.adapt_learning_rate$"):
        run_fn.adapt(params, _weights(tmp_path / "same", "default"), nan_batches.repeat(), nan_batches,
                     str(tmp_path / "a"))
