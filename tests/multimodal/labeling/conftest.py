"""A tiny randomly initialised BERT (a 200-word WordPiece vocabulary, two 32-wide layers) saved to a tmp
dir: the learned labeler's encoder in tests, loaded like any Hugging Face path, offline."""

from __future__ import annotations

import pytest

WORDS = ("no mild small large left right possible may represent heart size is normal cardiomegaly pleural "
         "effusion effusions edema clear lungs chest the a of and with without pneumothorax atelectasis opacity "
         "basilar versus or enlarged stable acute disease [redacted]").split()


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory):
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory = tmp_path_factory.mktemp("tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *WORDS]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(directory / "vocab.txt"), do_lower_case=True).save_pretrained(directory)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(directory)
    return str(directory)
