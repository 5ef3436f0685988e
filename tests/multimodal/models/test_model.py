"""MultimodalModel end to end on tiny configs: masks, views, save/load, pretrained text, LoRA, training."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from multimodal.models import MultimodalConfig, MultimodalModel
from preprocessing.text import default_text_encoder_path

SIZE = 64
TINY = dict(observations="phantom", image_size=SIZE, patch_size=16, image_hidden=64, image_layers=1, image_heads=4,
            image_mlp_dim=128, text_layers=1, text_max_length=16, fusion_layers=1, fusion_heads=4, fusion_hidden=64,
            decoder_layers=1, decoder_max_length=12, dropout=0.0)


def tiny_config(**overrides) -> MultimodalConfig:
    return MultimodalConfig(**{**TINY, **overrides})


@pytest.fixture(scope="module")
def model() -> MultimodalModel:
    torch.manual_seed(0)
    return MultimodalModel.from_config(tiny_config()).eval()


def make_inputs(model, texts, views=1, max_length=None, seed=0):
    generator = torch.Generator().manual_seed(seed)
    padding = "max_length" if max_length else "longest"
    text = model.tokenizer(texts, padding=padding, max_length=max_length, truncation=True, return_tensors="pt")
    b = len(texts)
    return {
        "pixel_values": torch.randn(b, views, 1, SIZE, SIZE, generator=generator),
        "view_mask": torch.ones(b, views, dtype=torch.bool),
        "input_ids": text.input_ids,
        "attention_mask": text.attention_mask,
    }


@torch.no_grad()
def outputs(model, inputs):
    out = model(**inputs)
    return out.logits, out.heatmaps, out.zone_logits


def test_output_shapes_and_mil_consistency(model):
    inputs = make_inputs(model, ["chest pain", "fever and cough for two days"], views=2)
    out = model(**inputs)
    b, d, (h, w) = 2, len(model.config.observations), model.grid_size
    assert (h, w) == (SIZE // 16, SIZE // 16)
    assert out.logits.shape == out.probs.shape == (b, d)
    assert out.heatmaps.shape == (b, d, h, w)
    assert out.zone_logits.shape == out.zone_probs.shape == (b, d, len(model.config.zones))
    assert out.fused_image.shape == (b, 2 * h * w, 64) and out.image_mask.shape == (b, 2 * h * w)
    assert out.fused_text.shape == (b, inputs["input_ids"].shape[1], 64)
    assert out.loss is None and out.losses == {}
    # "whether" is the MIL (log-mean-exp) pool of "where": the heat map decides the logit.
    r = model.config.mil_r
    pooled = (torch.logsumexp(r * out.heatmaps.flatten(2), -1) - math.log(h * w)) / r
    torch.testing.assert_close(out.logits, pooled)


@torch.no_grad()
def test_the_peak_loss_is_off_unless_weighted(model):
    inputs = make_inputs(model, ["chest pain"])
    region = torch.zeros(1, len(model.config.observations), *model.grid_size)
    region[0, 0, :2, :2] = 1
    assert set(model(**inputs, region_targets=region).losses) == {"region"}


def test_padded_text_tokens_change_nothing(model):
    texts = ["small effusion", "no prior"]
    short, padded = make_inputs(model, texts, max_length=8), make_inputs(model, texts, max_length=16)
    assert padded["attention_mask"].shape[1] == 16 and not padded["attention_mask"][:, -1].any()
    for a, b in zip(outputs(model, short), outputs(model, padded)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_empty_text_is_cls_sep_and_scores(model):
    inputs = make_inputs(model, [""])
    assert inputs["input_ids"].tolist() == [[model.tokenizer.cls_token_id, model.tokenizer.sep_token_id]]
    logits, heatmaps, zones = outputs(model, inputs)
    assert torch.isfinite(logits).all() and torch.isfinite(heatmaps).all() and torch.isfinite(zones).all()


def test_missing_view_is_never_seen_but_a_present_one_counts(model):
    inputs = make_inputs(model, ["cough", "cough"], views=2)
    inputs["view_mask"] = torch.tensor([[True, False], [True, False]])
    changed = {**inputs, "pixel_values": inputs["pixel_values"].clone()}
    changed["pixel_values"][:, 1] = torch.randn(2, 1, SIZE, SIZE)
    for a, b in zip(outputs(model, inputs), outputs(model, changed)):
        torch.testing.assert_close(a, b)
    both = {**changed, "view_mask": torch.ones(2, 2, dtype=torch.bool)}
    assert not torch.allclose(outputs(model, inputs)[0], outputs(model, both)[0])


def test_cross_attention_never_lands_on_padding_or_missing_views(model):
    inputs = make_inputs(model, ["effusion", "a much longer indication text"], views=2)
    inputs["view_mask"] = torch.tensor([[True, False], [True, True]])
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    n = model.grid_size[0] * model.grid_size[1]
    text_to_image = out.cross_attentions["text_to_image"][0]  # [B, heads, T, 2n]
    image_to_text = out.cross_attentions["image_to_text"][0]  # [B, heads, 2n, T]
    assert text_to_image[0, :, :, n:].abs().max() == 0
    pad = ~inputs["attention_mask"][0].bool()
    assert pad.any() and image_to_text[0][..., pad].abs().max() == 0


def test_generate_findings_greedy_and_beam(model):
    inputs = make_inputs(model, ["cough", ""])
    greedy = model.generate_findings(**inputs, max_new_tokens=4)
    beam = model.generate_findings(**inputs, num_beams=2, max_new_tokens=4, no_repeat_ngram_size=2,
                                   length_penalty=0.8)
    for texts in (greedy, beam):
        assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert greedy[0]  # an untrained decoder still emits word pieces


def test_save_load_round_trip_without_original_weights(model, tmp_path, monkeypatch):
    model.save_pretrained(tmp_path)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in tmp_path.iterdir()}

    import transformers

    def no_pretrained(*args, **kwargs):
        raise AssertionError("from_pretrained must not load the original text encoder")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", no_pretrained)
    loaded = MultimodalModel.from_pretrained(tmp_path, device="cpu")
    assert not loaded.training
    # loading skips random initialisation and the tying it brings: the decoder's output layer must
    # still share the word embeddings' storage (fine-tuning a loaded model trains them as one)
    assert _tied_groups(loaded) == _tied_groups(model) != []
    inputs = make_inputs(model, ["left basal opacity", ""], views=2)
    for a, b in zip(outputs(model, inputs), outputs(loaded, inputs)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert loaded.generate_findings(**inputs, max_new_tokens=4) == model.generate_findings(**inputs, max_new_tokens=4)


def _tied_groups(model) -> list[list[str]]:
    """Names of parameters sharing storage, grouped."""
    by_storage: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        by_storage.setdefault(param.data_ptr(), []).append(name)
    return sorted(names for names in by_storage.values() if len(names) > 1)


def test_checkpoints_from_before_the_fusion_ffn_change_still_load(model, tmp_path):
    """Version 0.1 checkpoints named the fusion FFN's output layer ``ffn.3`` (a dropout sat at 2)."""
    from safetensors.torch import load_file, save_file

    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    renamed = {k.replace(".ffn.2.", ".ffn.3."): v for k, v in weights.items()}
    assert renamed.keys() != weights.keys()
    save_file(renamed, tmp_path / "model.safetensors")
    loaded = MultimodalModel.from_pretrained(tmp_path, device="cpu")
    inputs = make_inputs(model, ["left basal opacity"])
    for a, b in zip(outputs(model, inputs), outputs(loaded, inputs)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_pretrained_minilm_weights_are_loaded(model):
    from transformers import AutoModel

    packaged = AutoModel.from_pretrained(str(default_text_encoder_path())).eval()
    random_init = MultimodalModel.from_config(tiny_config(), load_pretrained=False).eval()
    ids = make_inputs(model, ["right upper lobe pneumonia"])["input_ids"]
    with torch.no_grad():
        ours, reference, fresh = (m.embeddings(ids) for m in (model.text_encoder, packaged, random_init.text_encoder))
    torch.testing.assert_close(ours, reference)
    assert not torch.allclose(ours, fresh)
    assert len(model.text_encoder.encoder.layer) == 1
    # The findings decoder starts from the same word embeddings.
    torch.testing.assert_close(model.decoder.lm.bert.embeddings.word_embeddings.weight,
                               packaged.embeddings.word_embeddings.weight)


def test_lora_trains_only_adapters_and_round_trips(tmp_path):
    model = MultimodalModel.from_config(tiny_config(lora_text={"r": 2}, lora_image={"r": 2}))
    for encoder in (model.text_encoder, model.image_encoder):
        trainable = [n for n, p in encoder.named_parameters() if p.requires_grad]
        assert trainable and all("lora_" in n for n in trainable)
    assert all(p.requires_grad for p in model.fusion.parameters())
    model.save_pretrained(tmp_path)
    loaded = MultimodalModel.from_pretrained(tmp_path)
    inputs = make_inputs(model, ["cough"])
    for a, b in zip(outputs(model.eval(), inputs), outputs(loaded, inputs)):
        torch.testing.assert_close(a, b)


def test_merging_lora_keeps_outputs_and_leaves_plain_layers(tmp_path):
    """Adapters made non-zero (as after training) are folded into the weights: same outputs, no
    adapters left in the model or its config, and the saved model loads the same."""
    torch.manual_seed(0)
    model = MultimodalModel.from_config(tiny_config(lora_text={"r": 2}, lora_image={"r": 2}),
                                        load_pretrained=False).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    query = model.text_encoder.encoder.layer[0].attention.self.query
    base = query.base_layer.weight.detach().clone()
    inputs = make_inputs(model, ["cough", "fever and chest pain"])
    with torch.no_grad():
        before = outputs(model, inputs)
        model.merge_lora()
        after = outputs(model, inputs)
    assert model.config.lora_text is None and model.config.lora_image is None
    assert not any("lora_" in name for name, _ in model.named_parameters())
    assert not torch.allclose(model.text_encoder.encoder.layer[0].attention.self.query.weight, base)
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    loaded = MultimodalModel.from_pretrained(model.save_pretrained(tmp_path))
    with torch.no_grad():
        for a, b in zip(after, outputs(loaded, inputs)):
            torch.testing.assert_close(a, b)


def test_freezing_by_layers_and_all():
    model = MultimodalModel.from_config(tiny_config(text_layers=2, freeze_text=1, freeze_image="all"),
                                        load_pretrained=False)
    layers = model.text_encoder.encoder.layer
    assert not any(p.requires_grad for p in model.text_encoder.embeddings.parameters())
    assert not any(p.requires_grad for p in layers[0].parameters())
    assert all(p.requires_grad for p in layers[1].parameters())
    assert not any(p.requires_grad for p in model.image_encoder.parameters())
    assert all(p.requires_grad for p in model.heads.parameters())


@pytest.mark.parametrize("backbone", ["timm:test_vit", "timm:test_resnet"])
def test_timm_backbones_give_patch_tokens(backbone):
    model = MultimodalModel.from_config(tiny_config(image_encoder=backbone), load_pretrained=False).eval()
    h, w = model.grid_size
    logits, heatmaps, _ = outputs(model, make_inputs(model, ["cough"], views=2))
    assert logits.shape == (1, 5) and heatmaps.shape == (1, 5, h, w) and h * w > 1


def test_a_few_steps_drive_the_losses_down():
    torch.manual_seed(0)
    # A frozen text encoder keeps the step cheap; the decoder's 30k-word embedding still trains.
    model = MultimodalModel.from_config(tiny_config(freeze_text="all", loss_weights={"region_peak": 0.5})).train()
    inputs = make_inputs(model, ["cough and fever", "follow up", "", "trauma"], views=2, seed=1)
    inputs["view_mask"][2, 1] = False
    d, (h, w) = 5, model.grid_size
    labels = torch.tensor([[1, 0, 0, 1, 0], [0, 1, 0, 0, -1], [0, 0, 0, 0, 0], [1, 0, 1, 0, 0]], dtype=torch.float)
    region = torch.zeros(4, d, h, w)
    region[0, 0, 1:3, 1:3] = 1
    region[3, 2, 2:, :2] = 1
    findings = model.tokenizer(["enlarged heart.", "small effusion.", "normal.", "left lower nodule."],
                               padding=True, return_tensors="pt")
    targets = dict(labels=labels, region_targets=region, region_mask=region.flatten(2).amax(-1) > 0,
                   zone_targets=torch.zeros(4, d, 8), zone_mask=labels == 0,
                   findings_ids=findings.input_ids, findings_mask=findings.attention_mask)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    history = []
    for _ in range(6):
        out = model(**inputs, **targets)
        optimiser.zero_grad()
        out.loss.backward()
        optimiser.step()
        history.append({k: v.item() for k, v in out.losses.items()})
    assert set(history[0]) == {"classification", "region", "region_peak", "zone", "findings"}
    for name in ("classification", "region", "region_peak", "findings"):
        assert history[-1][name] < 0.7 * history[0][name], (name, history[0][name], history[-1][name])


FINDINGS = ["enlarged heart.", "small left effusion.", "normal heart size.", "left lower nodule."]


@pytest.fixture(scope="module")
def small_vocab_model() -> MultimodalModel:
    from multimodal.models import build_decoder_vocab
    from preprocessing.text import DEFAULT_TEXT_ENCODER, load_tokenizer

    torch.manual_seed(0)
    vocab = build_decoder_vocab(FINDINGS, load_tokenizer(DEFAULT_TEXT_ENCODER))
    return MultimodalModel.from_config(tiny_config(decoder_vocab=vocab, freeze_text="all"))


def test_restricted_decoder_vocab_emits_only_its_tokens(small_vocab_model):
    model = small_vocab_model.eval()
    vocab = model.config.decoder_vocab
    assert model.decoder.lm.cls.predictions.decoder.out_features == len(vocab) < 40
    # The decoder's word embeddings (and tied LM head) are the text encoder's rows of the subset.
    torch.testing.assert_close(model.decoder.lm.bert.embeddings.word_embeddings.weight,
                               model.text_encoder.embeddings.word_embeddings.weight[vocab])
    memory = torch.randn(3, 5, 64, generator=torch.Generator().manual_seed(0))
    for kwargs in ({}, {"num_beams": 3, "no_repeat_ngram_size": 2, "length_penalty": 0.8}):
        ids = model.decoder.generate(memory, torch.ones(3, 5, dtype=torch.bool), max_new_tokens=8, **kwargs)
        assert ids[:, 0].eq(model.tokenizer.cls_token_id).all() and set(ids.flatten().tolist()) <= set(vocab)


def test_restricted_decoder_vocab_round_trips(small_vocab_model, tmp_path):
    model = small_vocab_model.eval()
    model.save_pretrained(tmp_path)
    loaded = MultimodalModel.from_pretrained(tmp_path)
    assert loaded.config.decoder_vocab == model.config.decoder_vocab
    inputs = make_inputs(model, ["cough", "chest pain"])
    # "pneumothorax" is outside the subset: it reads as [UNK] instead of failing.
    findings = model.tokenizer(["small pneumothorax.", "normal."], padding=True, return_tensors="pt")
    targets = dict(findings_ids=findings.input_ids, findings_mask=findings.attention_mask)
    with torch.no_grad():
        before, after = model(**inputs, **targets), loaded(**inputs, **targets)
    torch.testing.assert_close(before.losses["findings"], after.losses["findings"], atol=0, rtol=0)
    for kwargs in ({}, {"num_beams": 2, "no_repeat_ngram_size": 2}):
        texts = model.generate_findings(**inputs, max_new_tokens=6, **kwargs)
        assert texts == loaded.generate_findings(**inputs, max_new_tokens=6, **kwargs)
        assert all(texts)


def test_restricted_decoder_vocab_learns(small_vocab_model):
    torch.manual_seed(0)
    model = copy.deepcopy(small_vocab_model).train()  # the other tests keep the untrained fixture
    inputs = make_inputs(model, ["cough", "follow up", "", "trauma"], seed=2)
    findings = model.tokenizer(FINDINGS, padding=True, return_tensors="pt")
    optimiser = torch.optim.AdamW(model.decoder.parameters(), lr=3e-3)
    history = []
    for _ in range(5):
        loss = model(**inputs, findings_ids=findings.input_ids, findings_mask=findings.attention_mask).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append(loss.item())
    assert history[-1] < 0.7 * history[0], history


def test_image_weights_from_a_local_file(tmp_path):
    from safetensors.torch import save_file

    from preprocessing.errors import ConfigError

    source = MultimodalModel.from_config(tiny_config(), load_pretrained=False)
    weights = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in source.image_encoder.vit.state_dict().items()}, str(weights))
    model = MultimodalModel.from_config(tiny_config(image_pretrained=str(weights)))
    torch.testing.assert_close(model.image_encoder.vit.patch_embedding.position_embeddings,
                               source.image_encoder.vit.patch_embedding.position_embeddings)
    with pytest.raises(ConfigError) as info:
        MultimodalModel.from_config(tiny_config(image_pretrained=str(tmp_path / "missing.pt")))
    assert info.value.key == "image_pretrained"
