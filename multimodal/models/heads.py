"""Disease heads (heat map, MIL-pooled logits, zones), their losses, and the findings decoder.

"Where" and "whether" agree by construction: the image-level logit of each disease is the MIL pool
of its heat map. The heat map is per-patch logits on the first view's fused tokens plus a
per-study offset from the pooled fused streams (text and every view), so context such as the
indication or the lateral view raises or lowers the whole map without moving its peak::

    heat[b, d, p] = patch_logit[b, d, p] + offset[b, d] (+ prior[d, p] with ``spatial_prior``)
    logit[b, d]   = MIL_p(heat[b, d, p])            (log-mean-exp with sharpness r, or attention)
    zone[b, d, z] = log-mean-exp of heat over zone z, weighted by the zone's cover of each patch

The optional spatial prior is a learned per-observation bias map on the grid (zeros when built;
training starts it from the training boxes, :func:`prior_from_box_frequency`): where the image
gives no evidence the map points where that disease's boxes usually lie, and image evidence moves
the peak from there.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from preprocessing.vocab import ZONES, zone_masks

from .attention import register_hf_attention


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x [B, T, H]`` over the tokens where ``mask [B, T]`` is True → ``[B, H]`` (0 if none)."""
    weights = mask.to(x.dtype)[..., None]
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class DiseaseHeads(nn.Module):
    """Heat maps, image-level and zone logits for ``num_labels`` diseases.

    ``forward(text [B, T, H], text_mask [B, T], image [B, N, H], image_mask [B, N], first_view [B, n, H])``
    with n = h * w patches of the first view, returns ``(logits [B, D], heatmaps [B, D, h, w],
    zone_logits [B, D, Z])``.
    """

    def __init__(self, hidden: int, num_labels: int, grid_size: tuple[int, int], zones: list[str], pooling: str,
                 r: float, spatial_prior: bool = False):
        super().__init__()
        self.grid_size = grid_size
        self.pooling = pooling
        self.r = r
        self.patch = nn.Linear(hidden, num_labels)
        self.offset = nn.Linear(2 * hidden, num_labels)
        self.attention = nn.Linear(hidden, num_labels) if pooling == "attention" else None
        self.prior = nn.Parameter(torch.zeros(num_labels, *grid_size)) if spatial_prior else None
        cover = torch.from_numpy(zone_masks(*grid_size)[[ZONES.index(z) for z in zones]]).flatten(1)
        # log of each zone's cover per patch [Z, n]: zone pooling adds it inside a log-sum-exp.
        self.register_buffer("log_zone_cover", cover.log(), persistent=False)
        self.register_buffer("log_zone_area", cover.sum(1).log(), persistent=False)

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor, image: torch.Tensor, image_mask: torch.Tensor,
                first_view: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pooled = torch.cat([masked_mean(text, text_mask), masked_mean(image, image_mask)], dim=-1)
        heat = self.patch(first_view).transpose(1, 2) + self.offset(pooled)[..., None]  # [B, D, n]
        heat = heat.float()  # pooling in fp32: log-sum-exp of bf16 logits loses the ranking
        if self.prior is not None:
            heat = heat + self.prior.float().flatten(1)
        if self.attention is None:
            logits = (torch.logsumexp(self.r * heat, dim=-1) - math.log(heat.shape[-1])) / self.r
        else:
            weights = self.attention(first_view).transpose(1, 2).float().softmax(dim=-1)
            logits = (weights * heat).sum(-1)
        zone = torch.logsumexp(self.r * heat[:, :, None, :] + self.log_zone_cover, dim=-1)
        zone_logits = (zone - self.log_zone_area) / self.r
        return logits, heat.unflatten(-1, self.grid_size), zone_logits


def prior_from_box_frequency(frequency: torch.Tensor, floor: float = 0.01) -> torch.Tensor:
    """Start values of the spatial prior from ``frequency [D, h, w]``, the share of an observation's
    training boxes that cover each patch: its log-odds (clipped to ``[floor, 1 - floor]``) less its
    maximum, so the prior is 0 where boxes are most frequent and negative elsewhere (all 0 for an
    observation without boxes), and the pooled logits start where they would without it."""
    logits = torch.logit(frequency.float().clamp(floor, 1 - floor))
    return logits - logits.flatten(1).amax(1)[:, None, None]


def _bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Element-wise BCE-with-logits in fp32 (safe under bf16/fp16 autocast)."""
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, label_mask: torch.Tensor | None,
                        uncertain_policy: str) -> torch.Tensor:
    """Masked BCE over ``[B, D]``: labels are 1 / 0 / -1 (uncertain); ``label_mask`` False = unknown.

    Uncertain labels are dropped (``"ignore"``) or read as 0 (``"zeros"``) or 1 (``"ones"``).
    """
    valid = torch.ones_like(labels, dtype=torch.bool) if label_mask is None else label_mask.bool()
    uncertain = labels < 0
    if uncertain_policy == "ignore":
        valid = valid & ~uncertain
    targets = torch.where(uncertain, float(uncertain_policy == "ones"), labels.float())
    weights = valid.float()
    return (_bce(logits, targets) * weights).sum() / weights.sum().clamp(min=1.0)


def region_loss(heatmaps: torch.Tensor, targets: torch.Tensor, region_mask: torch.Tensor) -> torch.Tensor:
    """Box supervision on the heat map ``[B, D, h, w]``; ``targets`` in [0, 1] (1 inside a box).

    For each (study, disease) with ``region_mask`` True, the mean BCE toward 1 inside the box and the
    mean BCE toward 0 outside it are averaged, so small boxes weigh as much as large ones.
    """
    heat, target = heatmaps.flatten(2).float(), targets.flatten(2).float()
    inside = (_bce(heat, torch.ones_like(heat)) * target).sum(-1) / target.sum(-1).clamp(min=1e-6)
    outside = (_bce(heat, torch.zeros_like(heat)) * (1 - target)).sum(-1) / (1 - target).sum(-1).clamp(min=1e-6)
    weights = region_mask.float()
    return ((inside + outside) / 2 * weights).sum() / weights.sum().clamp(min=1.0)


def region_peak_loss(heatmaps: torch.Tensor, targets: torch.Tensor, region_mask: torch.Tensor) -> torch.Tensor:
    """Box supervision on where the heat map ``[B, D, h, w]`` peaks: ``-log`` of the share of the
    spatial softmax over the grid that falls inside the box (cells weighted by ``targets`` in [0, 1]).

    Where :func:`region_loss` asks every box cell to be high and every other cell low, this one only
    asks that the map's mass, and so its peak, sits in the box: the pointing game's own question,
    as a multiple-instance loss over the box's cells. Averaged over the (study, disease) pairs with
    ``region_mask`` True.
    """
    heat = heatmaps.flatten(2).float().log_softmax(-1)
    target = targets.flatten(2).float()
    inside = torch.logsumexp(heat + torch.log(target.clamp(min=1e-12)), dim=-1)
    weights = region_mask.float() * (target.sum(-1) > 0).float()
    return (-inside * weights).sum() / weights.sum().clamp(min=1.0)


def zone_loss(zone_logits: torch.Tensor, targets: torch.Tensor, zone_mask: torch.Tensor) -> torch.Tensor:
    """BCE on zone logits ``[B, D, Z]`` for the (study, disease) pairs where ``zone_mask [B, D]`` is True."""
    weights = zone_mask.float()[..., None].expand_as(zone_logits)
    return (_bce(zone_logits, targets) * weights).sum() / weights.sum().clamp(min=1.0)


class FindingsDecoder(nn.Module):
    """A Hugging Face ``BertLMHeadModel`` (``is_decoder``, ``add_cross_attention``) over fused tokens.

    ``memory [B, M, Hm]`` (both fused streams concatenated) is projected to the decoder width when
    it differs. The text tokenizer reads and writes findings: :meth:`loss` takes and :meth:`generate`
    returns full tokenizer ids. With ``vocab`` (full ids, special ids first; see :mod:`.decoder_vocab`)
    the decoder itself works over those ``V_small`` ids only, through the buffers ``full_to_small
    [V_full]`` (ids outside the subset map to ``[UNK]``) and ``small_to_full [V_small]``; with None it
    works over the full vocabulary and both maps are the identity.
    """

    def __init__(self, text_config, layers: int, memory_dim: int, max_length: int, dropout: float,
                 special_ids: dict[str, int], vocab: list[int] | None = None):
        super().__init__()
        from transformers import BertConfig, BertLMHeadModel, GenerationConfig

        full_size = text_config.vocab_size
        small_to_full = torch.arange(full_size) if vocab is None else torch.tensor(vocab, dtype=torch.long)
        full_to_small = torch.full((full_size,), -1, dtype=torch.long)
        full_to_small[small_to_full] = torch.arange(len(small_to_full))
        full_to_small[full_to_small < 0] = full_to_small[special_ids["unk"]]
        # Derived from the config at construction, so not saved: older checkpoints load unchanged.
        self.register_buffer("full_to_small", full_to_small, persistent=False)
        self.register_buffer("small_to_full", small_to_full, persistent=False)
        small = {name: int(full_to_small[i]) for name, i in special_ids.items()}
        # No dropout on attention weights, as in the encoders and fusion (SDPA keeps its fused kernel).
        config = BertConfig(
            vocab_size=len(small_to_full), hidden_size=text_config.hidden_size,
            num_hidden_layers=layers, num_attention_heads=text_config.num_attention_heads,
            intermediate_size=text_config.intermediate_size,
            max_position_embeddings=max(text_config.max_position_embeddings, max_length),
            type_vocab_size=getattr(text_config, "type_vocab_size", 2), hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=0.0, is_decoder=True, add_cross_attention=True,
            attn_implementation=register_hf_attention(),
            pad_token_id=small["pad"], bos_token_id=small["bos"], eos_token_id=small["eos"],
        )
        self.lm = BertLMHeadModel(config)
        self.lm.generation_config = GenerationConfig(
            bos_token_id=small["bos"], eos_token_id=small["eos"], pad_token_id=small["pad"],
            decoder_start_token_id=small["bos"], max_new_tokens=max_length)
        self.memory_proj = nn.Linear(memory_dim, config.hidden_size) if memory_dim != config.hidden_size \
            else nn.Identity()
        self.bos_id = small["bos"]

    def init_from_encoder(self, encoder: nn.Module) -> int:
        """Copy the text encoder's weights whose names and shapes match (embeddings, first layers'
        self-attention and FFN) and its word embeddings' rows of the decoder vocabulary (the LM head
        is tied to them); cross-attention stays freshly initialised. Returns how many tensors."""
        own = self.lm.bert.state_dict()
        source = encoder.state_dict()
        words = "embeddings.word_embeddings.weight"
        source[words] = source[words][self.small_to_full.to(source[words].device)]
        matching = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
        self.lm.bert.load_state_dict(matching, strict=False)
        return len(matching)

    def loss(self, memory: torch.Tensor, memory_mask: torch.Tensor, ids: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
        """Teacher-forced token cross-entropy of full tokenizer ``ids [B, L]`` (``[CLS] ... [SEP]``) given memory.

        Vocabulary logits are computed only where a next token exists, not over padding.
        """
        ids = self.full_to_small[ids]
        hidden = self.lm.bert(input_ids=ids, attention_mask=mask, encoder_hidden_states=self.memory_proj(memory),
                              encoder_attention_mask=memory_mask.long()).last_hidden_state
        keep = mask[:, 1:].bool()
        logits = self.lm.cls(hidden[:, :-1][keep])
        return F.cross_entropy(logits.float(), ids[:, 1:][keep])

    @torch.no_grad()
    def generate(self, memory: torch.Tensor, memory_mask: torch.Tensor, **generate_kwargs) -> torch.Tensor:
        """Full tokenizer ids ``[B, <=1+max_new_tokens]`` from Hugging Face ``generate()`` (greedy, beams, ...).

        ``generate()`` runs over the decoder's own (small) ids; its output is mapped back.
        """
        from transformers import DynamicCache, EncoderDecoderCache

        start = torch.full((memory.shape[0], 1), self.bos_id, dtype=torch.long, device=memory.device)
        # generate() gives a decoder-only model a self-attention cache only; BERT's cross-attention
        # layers need the encoder-decoder pair.
        cache = EncoderDecoderCache(DynamicCache(config=self.lm.config), DynamicCache(config=self.lm.config))
        ids = self.lm.generate(input_ids=start, attention_mask=torch.ones_like(start),
                               encoder_hidden_states=self.memory_proj(memory),
                               encoder_attention_mask=memory_mask.long(), cache=cache, **generate_kwargs)
        return self.small_to_full[ids]
