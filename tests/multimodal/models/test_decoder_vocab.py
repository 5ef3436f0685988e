"""The restricted decoder vocabulary helper and its config checks (model behaviour: test_model.py)."""

from __future__ import annotations

import pytest

from multimodal.models import MultimodalConfig, build_decoder_vocab
from multimodal.models.decoder_vocab import normalise_decoder_vocab
from preprocessing.errors import ConfigError
from preprocessing.text import DEFAULT_TEXT_ENCODER, load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(DEFAULT_TEXT_ENCODER)


def test_build_decoder_vocab_puts_special_ids_first_then_the_texts_word_pieces(tokenizer):
    texts = ["Small left pleural effusion.", "No effusion."]
    vocab = build_decoder_vocab(texts, tokenizer)
    special = sorted({tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id})
    assert vocab[:4] == special and vocab[4:] == sorted(vocab[4:])
    pieces = {i for t in texts for i in tokenizer(t, add_special_tokens=False).input_ids}
    assert set(vocab[4:]) == pieces
    assert normalise_decoder_vocab(vocab, tokenizer) == vocab  # canonical order is stable


def test_min_count_drops_rare_word_pieces(tokenizer):
    vocab = build_decoder_vocab(["no effusion.", "no pneumothorax."], tokenizer, min_count=2)
    kept = tokenizer.convert_ids_to_tokens(vocab[4:])
    assert kept == sorted(kept, key=tokenizer.convert_tokens_to_ids) and set(kept) == {"no", "."}


def test_bad_decoder_vocab_names_the_key(tokenizer):
    with pytest.raises(ConfigError, match="decoder_vocab.*unique"):
        MultimodalConfig(decoder_vocab=[5, 7, 5])
    with pytest.raises(ConfigError, match="decoder_vocab"):
        MultimodalConfig(decoder_vocab=["the"])
    with pytest.raises(ConfigError, match="decoder_vocab.*30522"):
        normalise_decoder_vocab([1, 10**6], tokenizer)
