"""Experiment tracking for training runs through Accelerate's trackers (``logging.tracker``).

``tensorboard`` (default) writes ``RUN_DIR/tb``; ``mlflow`` logs into a local file store shared by
the runs beside this one (``RUN_DIR/../mlruns``, or ``MLFLOW_TRACKING_URI`` when set) under the
experiment ``mmdx``; ``wandb`` runs offline in ``RUN_DIR/wandb`` (``WANDB_MODE`` overrides; upload
later with ``wandb sync``); ``none`` logs nothing. MLflow and W&B are optional extras
(``pip install 'mmdx[mlflow]'`` / ``'mmdx[wandb]'``; ``make setup`` installs both). Neither phones
home unless asked: MLflow's usage telemetry and W&B's error reports are off by default
(``MLFLOW_DISABLE_TELEMETRY`` / ``WANDB_ERROR_REPORTING``, which a user's own setting overrides).

Every tracker gets the same things: the full resolved config (flattened to dotted keys), the
scalars the trainer logs (training loss each ``log_every`` steps, validation metrics at each
evaluation), pictures (heat-map samples, ROC and reliability figures at each evaluation) and, at
the end, the best model's card. Only the main process logs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

TRACKERS = ("tensorboard", "mlflow", "wandb", "none")
EXPERIMENT = "mmdx"
_EXTRA = {"mlflow": "mlflow-skinny", "wandb": "wandb"}
# Set before the package is imported; a value the user set wins.
_OFFLINE_DEFAULTS = {"mlflow": {"MLFLOW_DISABLE_TELEMETRY": "true"},
                     "wandb": {"WANDB_MODE": "offline", "WANDB_ERROR_REPORTING": "false"}}


def check_installed(tracker: str) -> None:
    """Raise a ConfigError naming ``logging.tracker`` when the tracker's package is missing."""
    from importlib.util import find_spec

    from preprocessing.errors import ConfigError

    if tracker in _EXTRA and find_spec(tracker) is None:
        raise ConfigError("logging.tracker", f"{tracker!r} needs the package {_EXTRA[tracker]} "
                          f"(pip install 'mmdx[{tracker}]'); choose one of {', '.join(TRACKERS)}")


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys with scalar values (lists and None as JSON text): what every tracker accepts as parameters."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
    return flat


class Tracking:
    """The trainer's handle on its tracker: started with the config, then pictures and the model card.

    Scalars go through ``accelerator.log`` as before; pictures and files need each tracker's own
    API, which the small writer classes below hold (one per tracker, no branches elsewhere).
    """

    def __init__(self, accelerator, tracker: str, config: dict[str, Any], run: Path):
        self.accelerator, self._writer = accelerator, None
        if tracker == "none":
            return
        accelerator.init_trackers("tb" if tracker == "tensorboard" else EXPERIMENT, config=flatten(config),
                                  init_kwargs=_prepare(tracker, run, accelerator.is_main_process))
        if accelerator.is_main_process:
            self._writer = _WRITERS[tracker](accelerator.get_tracker(tracker, unwrap=True))

    @property
    def active(self) -> bool:
        """True on the process that logs (the main one) when a tracker is on."""
        return self._writer is not None

    def images(self, tag: str, images, step: int) -> None:
        """Log pictures ``[N, 3, H, W]`` float in [0, 1] (a torch tensor or numpy array)."""
        if self._writer is not None:
            self._writer.images(tag, np.asarray(images, dtype=np.float32), step)

    def figure(self, tag: str, figure, step: int) -> None:
        """Log a matplotlib figure, then close it."""
        import matplotlib.pyplot as plt

        if self._writer is not None:
            self._writer.figure(tag, figure, step)
        plt.close(figure)

    def model_card(self, model_dir: Path, step: int) -> None:
        """Log the model directory's card: ``README.md`` when it has one, else its ``config.json``."""
        card = model_dir / "README.md" if (model_dir / "README.md").is_file() else model_dir / "config.json"
        if self._writer is not None and card.is_file():
            self._writer.card(card, step)


def _prepare(tracker: str, run: Path, main: bool) -> dict[str, dict[str, Any]]:
    """Accelerate's ``init_kwargs``; points MLflow at the shared local store and W&B at offline mode."""
    for name, value in _OFFLINE_DEFAULTS.get(tracker, {}).items():
        os.environ.setdefault(name, value)
    if tracker == "mlflow" and main:
        import mlflow

        if "MLFLOW_TRACKING_URI" not in os.environ:
            # MLflow 3 keeps the file store in maintenance mode behind this opt-in; it needs no
            # database package (mlflow-skinny has none) and no server.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            mlflow.set_tracking_uri((run.resolve().parent / "mlruns").as_uri())
        if mlflow.get_experiment_by_name(EXPERIMENT) is None:
            mlflow.create_experiment(EXPERIMENT)
        return {"mlflow": {"run_name": run.name}}
    if tracker == "wandb":
        return {"wandb": {"dir": str(run), "name": run.name}}
    return {}


class _TensorBoardWriter:
    def __init__(self, writer):
        self.writer = writer

    def images(self, tag: str, pictures: np.ndarray, step: int) -> None:
        self.writer.add_images(tag, pictures, step)

    def figure(self, tag: str, figure, step: int) -> None:
        self.writer.add_figure(tag, figure, step, close=False)

    def card(self, path: Path, step: int) -> None:
        text = path.read_text()
        self.writer.add_text("model_card", text if path.suffix == ".md" else f"```\n{text}\n```", step)


class _MlflowWriter:
    def __init__(self, run):
        import mlflow

        self.mlflow = mlflow

    def images(self, tag: str, pictures: np.ndarray, step: int) -> None:
        for n, picture in enumerate(pictures):
            self.mlflow.log_image(picture.transpose(1, 2, 0), key=f"{tag}/{n}", step=step)

    def figure(self, tag: str, figure, step: int) -> None:
        self.mlflow.log_figure(figure, f"{tag}/step_{step:07d}.png")

    def card(self, path: Path, step: int) -> None:
        self.mlflow.log_artifact(str(path), artifact_path="model_card")


class _WandbWriter:
    def __init__(self, run):
        import wandb

        self.run, self.wandb = run, wandb

    def images(self, tag: str, pictures: np.ndarray, step: int) -> None:
        self.run.log({tag: [self.wandb.Image(p.transpose(1, 2, 0)) for p in pictures]}, step=step)

    def figure(self, tag: str, figure, step: int) -> None:
        self.run.log({tag: self.wandb.Image(figure)}, step=step)

    def card(self, path: Path, step: int) -> None:
        artifact = self.wandb.Artifact("model-card", type="model_card")
        artifact.add_file(str(path))
        self.run.log_artifact(artifact)


_WRITERS = {"tensorboard": _TensorBoardWriter, "mlflow": _MlflowWriter, "wandb": _WandbWriter}
