"""Adversarial training: the ``adversarial`` config block and the batch perturbation the trainer applies.

Each micro-batch, the first ``share`` of its studies is replaced by an FGSM or PGD example
(:mod:`multimodal.robustness.attacks`) against the training loss itself (every loss the batch has
targets for), then the model trains on the mixed batch as usual. The attack runs on each process's
own micro-batch, under the same autocast as the training forward (Accelerate patches the model's
forward), and takes gradients with respect to the perturbation only, so gradient accumulation and
DDP see one ordinary forward/backward per micro-batch. Its random start draws from torch's RNG,
which the resumable state saves.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from multimodal.robustness.attacks import Attack, EmbeddingOffset, attack_batch
from preprocessing.errors import ConfigError


class AdversarialConfig(BaseModel):
    """The ``adversarial`` block of a training config; ``method: none`` (the default) trains clean."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    method: Literal["none", "fgsm", "pgd"] = Field("none", description="none: no adversarial examples")
    eps: float = Field(2 / 255, ge=0, le=1, description="L-inf budget on the [0, 1] intensity scale, "
                       "before normalisation")
    steps: int = Field(3, ge=1, description="PGD steps (FGSM takes one)")
    step_size: float | None = Field(None, gt=0, description="PGD step on the [0, 1] scale; None: 2.5 * eps / steps")
    random_start: bool = Field(True, description="PGD starts at a random point of the eps-ball")
    share: float = Field(0.5, gt=0, le=1, description="fraction of each micro-batch replaced by adversarial studies")
    text_eps: float | None = Field(None, gt=0, description="also perturb the text encoder's word embeddings "
                                   "(L-inf, embedding units); None: pixels only")

    @model_validator(mode="after")
    def _method_given(self) -> AdversarialConfig:
        # A resolved config.yaml repeats every default: only values that differ from them are a mistake.
        changed = [k for k in sorted(self.model_fields_set - {"method"})
                   if getattr(self, k) != type(self).model_fields[k].default]
        if self.method == "none" and changed:
            raise ConfigError("adversarial.method", f"{', '.join(changed)} set but method is 'none'; set fgsm or pgd")
        return self

    def attack(self) -> Attack:
        return Attack(method=self.method, eps=self.eps, steps=self.steps, step_size=self.step_size,
                      random_start=self.random_start, text_eps=self.text_eps)


class Adversary:
    """Turns training micro-batches into partly adversarial ones (identity when the method is none).

    ``model`` is the unwrapped :class:`~multimodal.models.modeling.MultimodalModel` (the attack
    needs no DDP synchronisation: it leaves the parameters' gradients alone).
    """

    def __init__(self, config: AdversarialConfig, model: nn.Module):
        self.config = config
        self.model = model
        self.text_offset = None
        if config.method != "none" and config.text_eps:
            self.text_offset = EmbeddingOffset(model.text_encoder.get_input_embeddings())

    def perturb(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``batch`` (``model.forward`` keyword arguments) with its first ``share`` studies attacked."""
        if self.config.method == "none":
            return batch
        k = int(self.config.share * len(batch["pixel_values"]) + 0.5)
        if k == 0:
            return batch
        head = {key: value[:k] for key, value in batch.items()}
        pixels, text_delta = attack_batch(self.model, head, lambda out: out.loss, self.config.attack(),
                                          self.text_offset)
        if text_delta is not None:
            offset = torch.zeros(*batch["input_ids"].shape, text_delta.shape[-1], device=text_delta.device)
            offset[:k] = text_delta
            self.text_offset.pending = offset
        return {**batch, "pixel_values": torch.cat([pixels, batch["pixel_values"][k:]])}
