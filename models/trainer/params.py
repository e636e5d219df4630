"""What the Trainer is told: one typed, frozen object that crosses the executor boundary as JSON in
the Trainer's custom_config, so run_fn reads it back in one line instead of casting loose keys."""
from __future__ import annotations

import dataclasses
import json

CUSTOM_CONFIG_KEY = "trainer_params"


@dataclasses.dataclass(frozen=True)
class TrainerParams:
    class_names: tuple[str, ...]
    image_size: int
    stain_normalisation: bool
    model: str
    epochs: int
    batch_size: int
    learning_rate: float
    early_stopping_patience: int     # 0: off
    average_symmetries: bool         # every signature averages the crop's 8 rotations/mirrors
    seed: int
    serving_model_name: str          # named in the TF Serving warm-up requests
    warmup_images: tuple[str, ...]   # absolute or remote paths; empty: serving's packaged images
    adapt_steps: int = 600           # fine-tuning batches when a blessed model is adapted to lab cells
    adapt_learning_rate: float = 3e-4
    lab_share: float = 0.5           # of each fine-tuning batch drawn from lab cells
    retired_labs: tuple[str, ...] = ()  # labs a blessed model learned from that a run may do without
    lab_eval_fraction: float = 0.3   # the share of each lab's cells the ingest held out (by a hash of each cell)

    def __post_init__(self):
        # JSON gives lists back; the object stays hashable and frozen all the way down.
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "warmup_images", tuple(self.warmup_images))
        object.__setattr__(self, "retired_labs", tuple(self.retired_labs))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_custom_config(self, **extra) -> dict:
        """The Trainer's custom_config; `extra` (e.g. a code fingerprint) enters TFX's cache key only."""
        return {CUSTOM_CONFIG_KEY: json.dumps(dataclasses.asdict(self), sort_keys=True), **extra}

    @classmethod
    def from_custom_config(cls, custom_config: dict) -> TrainerParams:
        return cls(**json.loads(custom_config[CUSTOM_CONFIG_KEY]))
