"""A learned report labeler in the manner of CheXbert (Smit et al., 2020).

A BERT encoder (the packaged MiniLM by default, any Hugging Face path or id) reads the report; one
4-class head per observation (``blank`` (not mentioned), ``positive``, ``negative``, ``uncertain``)
reads either the ``[CLS]`` vector (CheXbert's choice) or, by default, its own attention-weighted mean of
the token vectors (one learned query per observation, as label-wise attention in text classification:
each observation looks at the words about it, which a short CPU fine-tuning learns far sooner than a
single ``[CLS]`` vector serving fourteen heads). It is trained on reports labelled by the rules
(:mod:`preprocessing.report_labeler`) and then on a smaller hand-labelled set
(:mod:`multimodal.labeling.training`). Saved like :class:`~multimodal.models.modeling.MultimodalModel`:
``labeler_config.json`` (with the encoder's own config, so nothing is downloaded on load),
``model.safetensors`` and the tokenizer files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from torch import nn

from multimodal.models.encoders import _quiet_transformers
from preprocessing.errors import ConfigError
from preprocessing.text import DEFAULT_TEXT_ENCODER, normalize_text, resolve_text_encoder
from preprocessing.vocab import resolve_observations

CONFIG_NAME = "labeler_config.json"
WEIGHTS_NAME = "model.safetensors"
# Class index -> label value (None: not mentioned), the order of the heads' outputs.
CLASSES = ("blank", "positive", "negative", "uncertain")
CLASS_VALUES: tuple[int | None, ...] = (None, 1, 0, -1)


def class_of(value: int | None) -> int:
    """The class index of a label value (1 / 0 / -1 / None)."""
    return CLASS_VALUES.index(value)


class BertLabelerConfig(BaseModel):
    """Everything needed to rebuild a :class:`BertLabeler`; validated on load (errors name the key)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    encoder: str = Field(DEFAULT_TEXT_ENCODER, description="Hugging Face path or id, or the packaged MiniLM")
    observations: list[str] = Field(default_factory=lambda: list(resolve_observations("chexpert")),
                                    description="one 4-class head per observation, in this order")
    encoder_layers: int | None = Field(None, ge=1, description="keep only the encoder's first N layers "
                                                                "(None: all); fewer layers train and label faster")
    max_length: int = Field(128, ge=8, le=512, description="tokens per report; longer reports are cut")
    pooling: Literal["attention", "cls"] = Field("attention", description="what each head reads: its own "
                                                 "attention-weighted mean of the tokens, or the [CLS] vector")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="before the heads")
    ensemble_threshold: float = Field(0.99, ge=0.0, le=1.0, description="the ensemble takes this model's class "
                                                                        "over the rules' when its probability is at least this")
    encoder_config: dict[str, Any] | None = Field(None, description="the encoder's Hugging Face config, "
                                                                    "written on save so that loading needs no network")

    @field_validator("observations")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        return list(resolve_observations(names))

    def save(self, directory: Path) -> None:
        (directory / CONFIG_NAME).write_text(self.model_dump_json(indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> BertLabelerConfig:
        path = directory / CONFIG_NAME
        if not path.is_file():
            raise ConfigError(CONFIG_NAME, f"{path} does not exist (not a labeler directory)")
        try:
            return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, ValidationError) as err:
            raise ConfigError(CONFIG_NAME, f"{path}: {err}") from err


class BertLabeler(nn.Module):
    """BERT + one 4-class linear head per observation over its attention-pooled tokens (or ``[CLS]``)."""

    def __init__(self, config: BertLabelerConfig, load_pretrained: bool = True, tokenizer: Any = None):
        super().__init__()
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        self.config = config
        source = resolve_text_encoder(config.encoder)
        try:
            if config.encoder_config is not None and not load_pretrained:
                data = dict(config.encoder_config)
                self.encoder = AutoModel.from_config(AutoConfig.for_model(data.pop("model_type"), **data),
                                                     add_pooling_layer=False)
            else:
                # the pooler is dropped on purpose; the model code's helper silences transformers' report of it
                with _quiet_transformers():
                    self.encoder = AutoModel.from_pretrained(source, add_pooling_layer=False, dtype=torch.float32)
            self.tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(source)
        except OSError as err:
            raise ConfigError("encoder", f"cannot load {source!r}: {err}") from err
        layers = self.encoder.encoder.layer
        if config.encoder_layers is not None and config.encoder_layers < len(layers):
            self.encoder.encoder.layer = nn.ModuleList(list(layers)[:config.encoder_layers])
            self.encoder.config.num_hidden_layers = config.encoder_layers
        self.config.encoder_config = self.encoder.config.to_diff_dict()
        self.dropout = nn.Dropout(config.dropout)
        width, n_obs = self.encoder.config.hidden_size, len(config.observations)
        if config.pooling == "attention":
            self.queries = nn.Parameter(torch.randn(n_obs, width) * width ** -0.5)
        self.heads = nn.Linear(width, n_obs * len(CLASSES))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token ids and mask ``[B, T]`` -> logits ``[B, O, 4]`` (classes in :data:`CLASSES` order)."""
        tokens = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, T, H]
        return self.classify(tokens, attention_mask)

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, layers: int) -> torch.Tensor:
        """The token vectors ``[B, T, H]`` after the embeddings and the encoder's first ``layers`` layers:
        the part that training with frozen layers computes once per report (:mod:`.training`)."""
        hidden = self.encoder.embeddings(input_ids=input_ids)
        return self._layers(hidden, attention_mask, 0, layers)

    def forward_from(self, hidden: torch.Tensor, attention_mask: torch.Tensor, layer: int) -> torch.Tensor:
        """Logits ``[B, O, 4]`` from the token vectors ``[B, T, H]`` that enter encoder layer ``layer``
        (``forward_from(hidden_states(ids, mask, k), mask, k)`` is ``forward(ids, mask)``)."""
        return self.classify(self._layers(hidden, attention_mask, layer, None), attention_mask)

    def _layers(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int, stop: int | None) -> torch.Tensor:
        """Encoder layers ``start:stop`` over ``hidden`` ``[B, T, H]``, with the mask the encoder itself builds."""
        from transformers.masking_utils import create_bidirectional_mask

        layers = list(self.encoder.encoder.layer)[start:stop]
        if not layers:
            return hidden
        mask = create_bidirectional_mask(config=self.encoder.config, inputs_embeds=hidden, attention_mask=attention_mask)
        for layer in layers:
            hidden = layer(hidden, mask)
        return hidden

    def classify(self, tokens: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The heads: last-layer token vectors ``[B, T, H]`` and mask ``[B, T]`` -> logits ``[B, O, 4]``."""
        n_obs = len(self.config.observations)
        weight = self.heads.weight.view(n_obs, len(CLASSES), -1)  # [O, 4, H]
        bias = self.heads.bias.view(n_obs, len(CLASSES))
        if self.config.pooling == "cls":
            pooled = self.dropout(tokens[:, 0]).unsqueeze(1).expand(-1, n_obs, -1)  # [B, O, H]
        else:
            scores = torch.einsum("bth,oh->bot", tokens, self.queries) * tokens.shape[-1] ** -0.5
            scores = scores.masked_fill(attention_mask[:, None, :] == 0, torch.finfo(scores.dtype).min)
            pooled = self.dropout(torch.einsum("bot,bth->boh", scores.softmax(-1), tokens))
        return torch.einsum("boh,och->boc", pooled, weight) + bias

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Normalised, padded and cut to ``max_length``: ``input_ids`` and ``attention_mask`` ``[B, T]``."""
        enc = self.tokenizer([normalize_text(t) for t in texts], padding=True, truncation=True,
                             max_length=self.config.max_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    @torch.no_grad()
    def predict_proba(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> torch.Tensor:
        """Class probabilities ``[N, O, 4]`` for ``texts``, in batches (a tqdm bar with ``progress``)."""
        from tqdm.auto import tqdm

        self.eval()
        device = next(self.parameters()).device
        out = []
        with tqdm(total=len(texts), desc="label (bert)", unit="report", disable=not progress) as bar:
            for i in range(0, len(texts), batch_size):
                batch = {k: v.to(device) for k, v in self.tokenize(texts[i:i + batch_size]).items()}
                out.append(self(**batch).softmax(-1).float().cpu())
                bar.update(len(batch["input_ids"]))
        return torch.cat(out) if out else torch.zeros(0, len(self.config.observations), len(CLASSES))

    def values_from_proba(self, proba: torch.Tensor) -> list[dict[str, int | None]]:
        """Label values per report (the most probable class of each head) from ``[N, O, 4]`` probabilities."""
        names = self.config.observations
        return [{n: CLASS_VALUES[c] for n, c in zip(names, row.tolist())} for row in proba.argmax(-1)]

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device | None = None) -> BertLabeler:
        """Rebuild a saved labeler (``labeler_config.json`` + ``model.safetensors`` + tokenizer) in eval
        mode; strict, offline."""
        from safetensors.torch import load_model
        from transformers import AutoTokenizer

        directory = Path(directory)
        weights = directory / WEIGHTS_NAME
        config = BertLabelerConfig.load(directory)
        if not weights.is_file():
            raise ConfigError(WEIGHTS_NAME, f"{weights} does not exist")
        model = cls(config, load_pretrained=False, tokenizer=AutoTokenizer.from_pretrained(str(directory)))
        load_model(model, str(weights), strict=True)
        return model.to(device or "cpu").eval()

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``labeler_config.json``, ``model.safetensors`` and the tokenizer files into ``directory``."""
        from safetensors.torch import save_model

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.save(directory)
        save_model(self, str(directory / WEIGHTS_NAME))
        self.tokenizer.save_pretrained(str(directory))
        return directory
