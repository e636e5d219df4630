"""The image ExampleGen: TFX's FileBasedExampleGen running the image executor, with a driver whose
fingerprint sees file names (driver.py)."""
from __future__ import annotations

from google.protobuf import any_pb2, struct_pb2
from tfx import v1 as tfx
# tfx.v1 exposes neither FileBasedExampleGen nor ExecutorSpec; TFX's custom-executor guide uses these.
from tfx.components import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec

from components.image_example_gen import executor, image_reader
from components.image_example_gen.driver import ImageFolderDriver


class ImageExampleGen(FileBasedExampleGen):
    DRIVER_CLASS = ImageFolderDriver
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)


def image_example_gen(data_root: str, *, class_names: list[str], val_fraction: float,
                      hash_split_eval_fraction: float, val_split: str, max_pixels: int,
                      max_bad_fraction: float, code_version: str, labs_root: str = "",
                      lab_sources: dict[str, str] | None = None, lab_eval_fraction: float = 0.3) -> ImageExampleGen:
    """`code_version` enters the cache key only: editing the executor re-runs the step. Every sub-folder
    of `labs_root` (read at run time) and each of `lab_sources` is a lab's reviewed cells (lab_sources.py)."""
    params = struct_pb2.Struct()
    params.update({
        "class_names": list(class_names),
        "val_fraction": val_fraction,
        "hash_split_eval_fraction": hash_split_eval_fraction,
        "val_split": val_split,
        "max_pixels": max_pixels,
        "max_bad_fraction": max_bad_fraction,
        "code_version": code_version,
        "labs_root": labs_root,
        "lab_sources": dict(lab_sources or {}),
        "lab_eval_fraction": lab_eval_fraction,
    })
    packed = any_pb2.Any()
    packed.Pack(params)
    # A bucket is not probed from the compiling machine (it may not be able to read it): the Kaggle
    # TRAIN/TEST layout is assumed there, and the executor finds the real layout at run time.
    if "://" in data_root or image_reader.has_split_folders(data_root):
        # The patterns let the driver fingerprint the inputs (caching); the executor does the splitting.
        input_config = tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name="train", pattern="TRAIN/*/*"),
            tfx.proto.Input.Split(name="val", pattern="TRAIN/*/*"),
            tfx.proto.Input.Split(name="eval", pattern="TEST/*/*"),
        ])
        output_config = None
    else:
        input_config = tfx.proto.Input(splits=[tfx.proto.Input.Split(name="all", pattern="*/*")])
        output_config = tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
            tfx.proto.SplitConfig.Split(name=s, hash_buckets=1) for s in image_reader.SPLITS]))
    return ImageExampleGen(
        input_base=data_root,
        input_config=input_config,
        output_config=output_config,
        custom_config=tfx.proto.CustomConfig(custom_config=packed),
    ).with_id("FileBasedExampleGen")  # the id runs, summaries and Kubeflow specs already know
