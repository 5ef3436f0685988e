"""A restricted findings-decoder vocabulary: the tokenizer ids the decoder may read and emit.

Radiology findings use a few hundred to a few thousand of MiniLM's 30,522 word pieces; on a small
model the decoder's output layer over the full vocabulary is most of a training step. The subset is
stored in ``MultimodalConfig.decoder_vocab`` as full tokenizer ids, the special tokens first (sorted),
then the rest (sorted): small id ``k`` is full id ``decoder_vocab[k]``. Data sets keep full ids; the
decoder maps them (:class:`~multimodal.models.heads.FindingsDecoder`), and a word piece outside the
subset reads as ``[UNK]``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from preprocessing.errors import ConfigError


def decoder_special_ids(tokenizer: Any) -> list[int]:
    """The special ids the decoder needs (CLS = start, SEP = end, PAD, UNK), sorted.

    MASK is left out: the decoder never reads or writes it.
    """
    ids = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id}
    if None in ids:
        raise ConfigError("decoder_vocab", "the tokenizer lacks one of the CLS, SEP, PAD or UNK tokens")
    return sorted(ids)


def normalise_decoder_vocab(ids: Iterable[int], tokenizer: Any) -> list[int]:
    """``ids`` checked against the tokenizer and put in canonical order: special ids first, then sorted.

    Idempotent. Raises :class:`ConfigError` (key ``decoder_vocab``) for ids outside ``[0, len(tokenizer))``.
    """
    ids = list(ids)
    size = len(tokenizer)
    bad = [i for i in ids if not 0 <= i < size]
    if bad:
        raise ConfigError("decoder_vocab", f"ids must lie in [0, {size}) (the tokenizer's vocabulary); bad: {bad[:5]}")
    special = decoder_special_ids(tokenizer)
    return special + sorted(set(ids) - set(special))


def build_decoder_vocab(texts: Iterable[str], tokenizer: Any, min_count: int = 1) -> list[int]:
    """The decoder vocabulary of ``texts`` (e.g. the training split's findings).

    Word pieces occurring at least ``min_count`` times, plus the special ids, in the canonical order
    of :func:`normalise_decoder_vocab`; ready for ``MultimodalConfig.decoder_vocab``.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    pieces = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    counts = Counter(i for ids in pieces for i in ids)
    return normalise_decoder_vocab([i for i, n in counts.items() if n >= min_count], tokenizer)
