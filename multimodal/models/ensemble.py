"""`EnsembleModel`: several saved models acting as one, saved and loaded like a single model.

A directory ``E`` written by :func:`build_ensemble` holds ``ensemble.json`` (members, weights,
which member writes the findings, each member's config and the sha256 of its config and weights),
``members/<i>/`` (each member's own model directory, copied), and at the top the files of a single
model directory except the weights: ``config.json`` (the ensemble's: member 0's architecture keys,
with its own name, thresholds and calibration) and the tokenizer. ``MultimodalModel.from_pretrained(E)``
returns an :class:`EnsembleModel`, so the Predictor, ``mmdx evaluate``/``score``/``calibrate``,
PACS scoring and the listener take ``E`` wherever they take a model.

Averaging: the members' **raw** probabilities (sigmoid of their logits; a member's own calibration
is not used) are averaged with the weights; the ensemble's logit is the logit of that mean, and
the ensemble's own ``config.calibration`` (fitted on the ensemble as a whole by ``mmdx calibrate``)
maps it to the reported probability. Heat maps are averaged as probabilities after bilinear
resampling to member 0's patch grid; zone probabilities are averaged. Inputs are resized to each
member's image size (the letterbox is one uniform scale, so resizing the square is exact). Members
may differ in image encoder and size but must share the observation list and the tokenizer's
vocabulary. Findings text comes from member ``findings_member``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from preprocessing.errors import ConfigError

from .calibration import calibrated_probs
from .configuration import CONFIG_NAME, MultimodalConfig
from .model_card import weights_sha256
from .modeling import ENSEMBLE_NAME, WEIGHTS_NAME, MultimodalModel, MultimodalOutput

MEMBERS_DIR = "members"


class EnsembleModel(nn.Module):
    """Weighted members scored together; ``forward`` returns one :class:`MultimodalOutput`.

    ``sample_probs`` ``[B, M, D]`` holds each member's probability through the ensemble's calibration
    map (their spread is the uncertainty, ``uncertainty_method="ensemble"``).
    """

    weights_file = ENSEMBLE_NAME  # its sha256 covers every member's (recorded in it)

    def __init__(self, members: list[MultimodalModel], weights: list[float], config: MultimodalConfig,
                 findings_member: int = 0):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.weights = [w / sum(weights) for w in weights]
        self.config, self.findings_member = config, findings_member
        self.tokenizer = members[0].tokenizer

    @property
    def grid_size(self) -> tuple[int, int]:
        """Member 0's heat-map grid, on which the ensemble's heat maps are averaged."""
        return self.members[0].grid_size

    def _inputs(self, member: MultimodalModel, pixel_values: torch.Tensor, **rest) -> dict:
        size = member.config.image_size
        if pixel_values.shape[-1] != size:
            b, v = pixel_values.shape[:2]
            pixel_values = F.interpolate(pixel_values.flatten(0, 1), size=(size, size), mode="bilinear",
                                         antialias=True, align_corners=False).view(b, v, 1, size, size)
        return {"pixel_values": pixel_values, **rest}

    def forward(self, pixel_values: torch.Tensor, view_mask: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor, **targets) -> MultimodalOutput:
        """Score a batch with every member (targets are ignored: an ensemble is not trained as one)."""
        outputs = [m(**self._inputs(m, pixel_values, view_mask=view_mask, input_ids=input_ids,
                                    attention_mask=attention_mask)) for m in self.members]
        grid = self.grid_size
        mean = sum(w * o.logits.float().sigmoid() for w, o in zip(self.weights, outputs))
        heat = sum(w * F.interpolate(o.heatmaps.float().sigmoid(), size=grid, mode="bilinear", align_corners=False)
                   for w, o in zip(self.weights, outputs))
        zones = sum(w * o.zone_probs.float() for w, o in zip(self.weights, outputs))
        logits = torch.logit(mean, eps=1e-6)
        observations = self.config.observations
        samples = torch.stack([calibrated_probs(o.logits.float(), self.config.calibration, observations)
                               for o in outputs], 1)
        first = outputs[self.findings_member]
        return MultimodalOutput(
            logits=logits, probs=calibrated_probs(logits, self.config.calibration, observations),
            heatmaps=torch.logit(heat, eps=1e-6), zone_logits=torch.logit(zones, eps=1e-6), zone_probs=zones,
            fused_image=first.fused_image, fused_text=first.fused_text, image_mask=first.image_mask,
            text_mask=first.text_mask, sample_probs=samples, uncertainty_method="ensemble")

    @torch.no_grad()
    def generate_findings(self, pixel_values: torch.Tensor, **kwargs) -> list[str]:
        """Findings text of member ``findings_member``."""
        member = self.members[self.findings_member]
        return member.generate_findings(**self._inputs(member, pixel_values, **kwargs))

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device | None = None) -> EnsembleModel:
        """Load an ensemble directory; each member's files must match the sha256 recorded in it."""
        directory = Path(directory)
        spec = json.loads((directory / ENSEMBLE_NAME).read_text())
        members = []
        for i, entry in enumerate(spec["members"]):
            path = directory / entry["path"]
            for name, key in ((CONFIG_NAME, "config_sha256"), (WEIGHTS_NAME, "weights_sha256")):
                if not (path / name).is_file() or weights_sha256(path, name) != entry[key]:
                    raise ConfigError(f"members[{i}].{key}", f"{path / name} is missing or differs from the file "
                                      f"the ensemble was built from")
            members.append(MultimodalModel.from_pretrained(path, device=device))
        model = cls(members, [e["weight"] for e in spec["members"]], MultimodalConfig.load(directory),
                    spec["findings_member"])
        return model.to(device or "cpu").eval()


def build_ensemble(models: list[str | Path], out: str | Path, weights: list[float] | None = None,
                   findings_member: int = 0, name: str = "mmdx-ensemble") -> Path:
    """Write an ensemble directory of the saved ``models`` into ``out`` (which must not exist).

    ``weights``: one per model, > 0 (None: equal). The ensemble's thresholds start as the weighted
    mean of the members'; run ``mmdx calibrate`` on it to fit its calibration and thresholds.
    Returns ``out``.
    """
    from transformers import AutoTokenizer

    out = Path(out)
    if len(models) < 2:
        raise ConfigError("--models", "an ensemble needs at least two model directories")
    weights = list(weights) if weights is not None else [1.0] * len(models)
    if len(weights) != len(models) or any(w <= 0 for w in weights):
        raise ConfigError("--weights", f"need {len(models)} weights > 0, got {weights}")
    if not 0 <= findings_member < len(models):
        raise ConfigError("--findings-from", f"must index one of the {len(models)} models, got {findings_member}")
    if out.exists():
        raise ConfigError("--out", f"{out} already exists; choose a new directory")
    configs = [MultimodalConfig.load(m) for m in models]
    for m, c in zip(models, configs):
        if c.observations != configs[0].observations:
            raise ConfigError("observations", f"{m} scores {c.observations}, {models[0]} {configs[0].observations}")
    tokenizers = [AutoTokenizer.from_pretrained(str(m)) for m in models]
    for m, t in zip(models, tokenizers):
        if t.get_vocab() != tokenizers[0].get_vocab():
            raise ConfigError("text_encoder", f"{m} has another tokenizer vocabulary than {models[0]}")
    total = sum(weights)
    entries = []
    for i, (m, c, w) in enumerate(zip(models, configs, weights)):
        target = out / MEMBERS_DIR / str(i)
        shutil.copytree(m, target)
        entries.append({"path": f"{MEMBERS_DIR}/{i}", "source": Path(m).name, "weight": w / total,
                        "config_sha256": weights_sha256(target, CONFIG_NAME),
                        "weights_sha256": weights_sha256(target, WEIGHTS_NAME), "config": c.to_dict()})
    spec = {"members": entries, "findings_member": findings_member,
            "averaging": "weighted mean of member probabilities (sigmoid of raw logits); heat maps as "
                         "probabilities on member 0's grid; then the ensemble's calibration"}
    text = json.dumps(spec, indent=2) + "\n"
    config = MultimodalConfig.from_dict({**configs[0].to_dict(), "name": name, "calibration": None,
                                         "version": f"{configs[0].version}+ens.{hashlib.sha256(text.encode()).hexdigest()[:8]}",
                                         "max_views": min(c.max_views for c in configs),
                                         "thresholds": {o: sum(w * c.thresholds[o] for w, c in zip(weights, configs)) / total
                                                        for o in configs[0].observations}})
    config.save(out)
    tokenizers[0].save_pretrained(str(out))
    (out / ENSEMBLE_NAME).write_text(text)
    return out
