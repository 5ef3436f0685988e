"""`MultimodalModel`: image + text encoders, bidirectional fusion, disease/region heads, findings decoder.

Shapes (B studies, V views, S image size, T text tokens, N = h * w patches per view, H fusion width,
D observations, Z zones)::

    pixel_values [B, V, 1, S, S] --image encoder (present views only)--> [B, V, N, Ci] + view embedding
                                  --> image tokens [B, V*N, Ci], image_mask [B, V*N]
    input_ids [B, T] --text encoder--> [B, T, Ct], text_mask [B, T]
    --fusion (L layers)--> fused_text [B, T, H], fused_image [B, V*N, H]
    --heads--> heatmaps [B, D, h, w] (first view), logits [B, D] (MIL pool), zone_logits [B, D, Z]
    --decoder over [fused_text; fused_image]--> findings tokens
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from preprocessing.errors import ConfigError
from preprocessing.text import load_tokenizer

from .calibration import calibrated_probs
from .configuration import MultimodalConfig
from .decoder_vocab import normalise_decoder_vocab
from .encoders import apply_freezing, apply_lora, build_image_encoder, build_text_encoder, merge_lora, text_layers
from .fusion import CrossModalFusion
from .head_pruning import apply_head_counts
from .model_card import CARD_NAME, ModelCard, weights_sha256
from .heads import DiseaseHeads, FindingsDecoder, classification_loss, region_loss, region_peak_loss, zone_loss

WEIGHTS_NAME = "model.safetensors"
ENSEMBLE_NAME = "ensemble.json"  # marks an ensemble directory (see .ensemble)


@dataclass
class MultimodalOutput:
    """What :meth:`MultimodalModel.forward` returns.

    ``loss`` is the weighted sum of ``losses`` (keys among classification, region, zone, findings;
    only those whose targets were given), None without targets. ``heatmaps`` are logits on the first
    view's patch grid. ``probs`` pass ``logits`` through ``config.calibration`` (sigmoid when None).
    ``sample_probs`` ``[B, K, D]``: the K probabilities an ensemble or test-time augmentation averaged,
    named by ``uncertainty_method`` (None for one plain pass). ``cross_attentions`` (when asked) maps ``"text_to_image"`` / ``"image_to_text"``
    to one ``[B, heads, Tq, Tk]`` tensor per fusion layer.
    """

    logits: torch.Tensor
    probs: torch.Tensor
    heatmaps: torch.Tensor
    zone_logits: torch.Tensor
    zone_probs: torch.Tensor
    fused_image: torch.Tensor
    fused_text: torch.Tensor
    image_mask: torch.Tensor
    text_mask: torch.Tensor
    loss: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    cross_attentions: dict[str, tuple[torch.Tensor, ...]] | None = None
    sample_probs: torch.Tensor | None = None
    uncertainty_method: str | None = None


def averaged_output(outputs: list[MultimodalOutput], heat_probs: torch.Tensor, source: str) -> MultimodalOutput:
    """One output from several passes over the same batch (TTA, MC dropout).

    ``probs`` (the reported, calibrated ones) and zone probabilities are averaged, ``logits`` are
    the logit of the mean raw probability, ``heatmaps`` the logit of ``heat_probs`` (the caller's
    averaged heat-map probabilities ``[B, D, h, w]``). ``sample_probs`` ``[B, K, D]`` keeps every
    pass (every member of every pass when the passes are an ensemble's), and
    ``uncertainty_method`` names ``source`` after the passes' own (``"ensemble+tta"``). The rest
    (fused states, masks, loss) is the first pass's.
    """
    first = outputs[0]
    samples = torch.cat([o.probs.float()[:, None] if o.sample_probs is None else o.sample_probs.float()
                         for o in outputs], 1)
    zone_probs = torch.stack([o.zone_probs.float() for o in outputs]).mean(0)
    raw = torch.stack([o.logits.float().sigmoid() for o in outputs]).mean(0)
    method = source if first.uncertainty_method is None else f"{first.uncertainty_method}+{source}"
    return MultimodalOutput(
        logits=torch.logit(raw, eps=1e-6), probs=torch.stack([o.probs.float() for o in outputs]).mean(0),
        heatmaps=torch.logit(heat_probs, eps=1e-6), zone_logits=torch.logit(zone_probs, eps=1e-6),
        zone_probs=zone_probs, fused_image=first.fused_image, fused_text=first.fused_text,
        image_mask=first.image_mask, text_mask=first.text_mask, loss=first.loss, losses=first.losses,
        sample_probs=samples, uncertainty_method=method)


class MultimodalModel(nn.Module):
    """Chest-radiograph model: diseases, where they are, and findings text, from images + indication.

    Build a fresh model with :meth:`from_config` (loads the pretrained text encoder) and a trained
    one with :meth:`from_pretrained` (no network, no original weights needed).
    """

    weights_file = WEIGHTS_NAME  # the file whose sha256 identifies a saved model

    def __init__(self, config: MultimodalConfig, load_pretrained: bool = False, tokenizer: Any = None):
        super().__init__()
        config.validate()
        self.config = config
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config.text_encoder)
        self.image_encoder = build_image_encoder(config, load_pretrained)
        self.text_encoder = build_text_encoder(config, load_pretrained)
        if config.text_config is None:
            config.text_config = self.text_encoder.config.to_diff_dict()
        image_dim, text_dim = self.image_encoder.out_dim, self.text_encoder.config.hidden_size
        self.view_embedding = nn.Parameter(torch.randn(config.max_views, image_dim) * 0.02)
        self.fusion = CrossModalFusion(text_dim, image_dim, config.fusion_hidden, config.fusion_layers,
                                       config.fusion_heads, config.fusion_mlp_ratio, config.dropout)
        self.heads = DiseaseHeads(config.fusion_hidden, len(config.observations), self.grid_size, config.zones,
                                  config.mil_pooling, config.mil_r, config.spatial_prior)
        special = {"bos": self.tokenizer.cls_token_id, "eos": self.tokenizer.sep_token_id,
                   "pad": self.tokenizer.pad_token_id, "unk": self.tokenizer.unk_token_id}
        if config.decoder_vocab is not None:
            config.decoder_vocab = normalise_decoder_vocab(config.decoder_vocab, self.tokenizer)
        self.decoder = FindingsDecoder(self.text_encoder.config, config.decoder_layers, config.fusion_hidden,
                                       config.decoder_max_length, config.dropout, special, config.decoder_vocab)
        if load_pretrained and config.decoder_init_from_text:
            self.decoder.init_from_encoder(self.text_encoder)
        if config.attention_heads:
            apply_head_counts(self, config.attention_heads)
        self._set_trainable()

    def _set_trainable(self) -> None:
        """Apply the freezing policy, then LoRA (which freezes the rest of its encoder)."""
        config = self.config
        apply_freezing(self.image_encoder.stem(), self.image_encoder.blocks(), self.image_encoder,
                       config.freeze_image)
        apply_freezing(*text_layers(self.text_encoder), self.text_encoder, config.freeze_text)
        if config.lora_image is not None:
            apply_lora(self.image_encoder, config.lora_image, self.image_encoder.lora_targets, "lora_image")
        if config.lora_text is not None:
            apply_lora(self.text_encoder, config.lora_text, ["query", "value"], "lora_text")

    def merge_lora(self) -> MultimodalModel:
        """Fold the LoRA adapters of both encoders into their weights, in place (outputs unchanged up to
        float rounding): ``config.lora_image`` / ``lora_text`` become None, so the saved model has
        plain layers and, loaded again, trains its encoders as ``freeze_image`` / ``freeze_text`` say
        (this copy keeps the base weights frozen as LoRA left them)."""
        for encoder, key in ((self.image_encoder, "lora_image"), (self.text_encoder, "lora_text")):
            if getattr(self.config, key) is not None:
                merge_lora(encoder)
                setattr(self.config, key, None)
        return self

    @property
    def grid_size(self) -> tuple[int, int]:
        """The heat-map grid (h, w): the image encoder's patch grid."""
        return self.image_encoder.grid_size

    @classmethod
    def from_config(cls, config: MultimodalConfig, load_pretrained: bool = True) -> MultimodalModel:
        """A fresh model; with ``load_pretrained`` the text encoder (and image encoder, when
        ``image_pretrained`` is set) start from their pretrained weights."""
        return cls(config, load_pretrained=load_pretrained)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device | None = None) -> MultimodalModel:
        """Rebuild a saved model (config.json + model.safetensors + tokenizer) in eval mode; an ensemble
        directory (``ensemble.json``) gives an :class:`~multimodal.models.ensemble.EnsembleModel`."""
        from safetensors.torch import load_model
        from transformers import AutoTokenizer, PreTrainedModel

        directory = Path(directory)
        if (directory / ENSEMBLE_NAME).is_file():
            from .ensemble import EnsembleModel

            return EnsembleModel.from_pretrained(directory, device=device)
        weights = directory / WEIGHTS_NAME
        if not weights.is_file():
            raise ConfigError(WEIGHTS_NAME, f"{weights} does not exist")
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
        # The strict load below overwrites every weight, so random initialisation (0.5 s of a 0.7 s
        # load) is skipped; transformers' switch also skips its weight tying, redone here.
        with _no_init_weights():
            model = cls(MultimodalConfig.load(directory), load_pretrained=False, tokenizer=tokenizer)
        for module in model.modules():
            if isinstance(module, PreTrainedModel):
                module.tie_weights()
        load_model(model, str(weights), strict=True)
        return model.to(device or "cpu").eval()

    def save_pretrained(self, directory: str | Path, card: ModelCard | None = None) -> Path:
        """Write config.json, model.safetensors, the tokenizer files and the model card (README.md,
        from ``card``: what training recorded; see :mod:`multimodal.models.model_card`) into ``directory``."""
        from safetensors.torch import save_model

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.save(directory)
        save_model(self, str(directory / WEIGHTS_NAME))
        self.tokenizer.save_pretrained(str(directory))
        (directory / CARD_NAME).write_text((card or ModelCard()).render(self.config, weights_sha256(directory)))
        return directory

    def _encode_images(self, pixel_values: torch.Tensor, view_mask: torch.Tensor) -> torch.Tensor:
        """``[B, V, 1, S, S]`` → tokens ``[B, V*N, Ci]``; missing views are never encoded (zeros)."""
        b, v = view_mask.shape
        if torch.onnx.is_in_onnx_export():  # a graph has no data-dependent shapes: encode all, zero the missing
            tokens = self.image_encoder(pixel_values.flatten(0, 1)) * view_mask.flatten()[:, None, None]
            views = tokens.unflatten(0, (b, v))
        else:
            present = view_mask.flatten().nonzero().squeeze(1)
            tokens = self.image_encoder(pixel_values.flatten(0, 1)[present])
            n, c = tokens.shape[1:]
            views = tokens.new_zeros(b * v, n, c).index_copy(0, present, tokens).view(b, v, n, c)
        return (views + self.view_embedding[:v, None, :].to(views.dtype)).flatten(1, 2)

    def _fuse(self, pixel_values, view_mask, input_ids, attention_mask, output_attentions=False):
        """Encode and fuse; returns (fused_text, text_mask, fused_image, image_mask, attentions)."""
        if view_mask.shape[1] > self.config.max_views:
            raise ValueError(f"{view_mask.shape[1]} views given; this model takes at most {self.config.max_views}")
        view_mask = view_mask.bool()
        image = self._encode_images(pixel_values, view_mask)
        image_mask = view_mask.repeat_interleave(image.shape[1] // view_mask.shape[1], dim=1)
        text_mask = attention_mask.bool()
        text = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        fused_text, fused_image, attentions = self.fusion(text, text_mask, image, image_mask, output_attentions)
        return fused_text, text_mask, fused_image, image_mask, attentions

    def forward(self, pixel_values: torch.Tensor, view_mask: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor, labels: torch.Tensor | None = None,
                label_mask: torch.Tensor | None = None, region_targets: torch.Tensor | None = None,
                region_mask: torch.Tensor | None = None, zone_targets: torch.Tensor | None = None,
                zone_mask: torch.Tensor | None = None, findings_ids: torch.Tensor | None = None,
                findings_mask: torch.Tensor | None = None, output_attentions: bool = False) -> MultimodalOutput:
        """Score a batch; shapes as in the module docstring and ``docs/architecture.md``.

        Targets are optional and independent: each one given adds its loss (weighted by
        ``config.loss_weights``); ``*_mask`` tensors say which entries are known.
        """
        fused_text, text_mask, fused_image, image_mask, attentions = self._fuse(
            pixel_values, view_mask, input_ids, attention_mask, output_attentions)
        patches = self.grid_size[0] * self.grid_size[1]
        logits, heatmaps, zone_logits = self.heads(fused_text, text_mask, fused_image, image_mask,
                                                   fused_image[:, :patches])
        losses: dict[str, torch.Tensor] = {}
        if labels is not None:
            losses["classification"] = classification_loss(logits, labels, label_mask, self.config.uncertain_policy)
        if region_targets is not None:
            mask = region_mask if region_mask is not None else region_targets.flatten(2).amax(-1) > 0
            losses["region"] = region_loss(heatmaps, region_targets, mask)
            if self.config.loss_weights["region_peak"] > 0:
                losses["region_peak"] = region_peak_loss(heatmaps, region_targets, mask)
        if zone_targets is not None:
            mask = zone_mask if zone_mask is not None else torch.ones(zone_targets.shape[:2], dtype=torch.bool,
                                                                      device=zone_targets.device)
            losses["zone"] = zone_loss(zone_logits, zone_targets, mask)
        if findings_ids is not None:
            memory, memory_mask = torch.cat([fused_text, fused_image], 1), torch.cat([text_mask, image_mask], 1)
            findings_mask = findings_mask if findings_mask is not None else findings_ids != self.tokenizer.pad_token_id
            losses["findings"] = self.decoder.loss(memory, memory_mask, findings_ids, findings_mask)
        loss = sum(self.config.loss_weights[k] * v for k, v in losses.items()) if losses else None
        return MultimodalOutput(
            logits=logits, probs=calibrated_probs(logits, self.config.calibration, self.config.observations),
            heatmaps=heatmaps, zone_logits=zone_logits,
            zone_probs=zone_logits.sigmoid(), fused_image=fused_image, fused_text=fused_text,
            image_mask=image_mask, text_mask=text_mask, loss=loss, losses=losses, cross_attentions=attentions)

    @torch.no_grad()
    def generate_findings(self, pixel_values: torch.Tensor, view_mask: torch.Tensor, input_ids: torch.Tensor,
                          attention_mask: torch.Tensor, num_beams: int = 1, max_new_tokens: int | None = None,
                          length_penalty: float = 1.0, no_repeat_ngram_size: int = 0, **generate_kwargs) -> list[str]:
        """Findings text per study via Hugging Face ``generate()``; extra kwargs go to ``generate``."""
        fused_text, text_mask, fused_image, image_mask, _ = self._fuse(pixel_values, view_mask, input_ids,
                                                                        attention_mask)
        ids = self.decoder.generate(
            torch.cat([fused_text, fused_image], 1), torch.cat([text_mask, image_mask], 1), num_beams=num_beams,
            max_new_tokens=max_new_tokens or self.config.decoder_max_length, length_penalty=length_penalty,
            no_repeat_ngram_size=no_repeat_ngram_size, **generate_kwargs)
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)


def _no_init_weights():
    """transformers' context that turns weight initialisation into no-ops (moved in 5.0)."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        from transformers.modeling_utils import no_init_weights
    return no_init_weights()
