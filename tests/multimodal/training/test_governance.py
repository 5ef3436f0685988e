"""What a run leaves for a security review: signed resume state, encrypted caches, a model card."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from multimodal.cli import main
from multimodal.security.signing import UnsignedStateError
from multimodal.training import train
from preprocessing.crypto import generate_key_file


def test_resume_refuses_a_changed_or_planted_state_file(tiny_config, tmp_path):
    train(tiny_config, tmp_path / "run", overrides=["halt_after_steps=2"])
    state = tmp_path / "run" / "state"
    planted = state / "custom_checkpoint_9.pkl"
    planted.write_bytes(b"cos\nsystem\n(S'echo owned'\ntR.")
    with pytest.raises(UnsignedStateError, match="custom_checkpoint_9.pkl was added"):
        train(tiny_config, tmp_path / "run", resume=True)
    planted.unlink()
    pickled = next(state.glob("custom_checkpoint_*.pkl"))
    original = pickled.read_bytes()
    pickled.write_bytes(original + b"\0")
    with pytest.raises(UnsignedStateError, match="was changed"):
        train(tiny_config, tmp_path / "run", resume=True)
    pickled.write_bytes(original)
    assert train(tiny_config, tmp_path / "run", resume=True).steps == 4


def test_encrypted_cache_trains_the_same_as_a_clear_one(tiny_config, tmp_path, monkeypatch):
    config = {**tiny_config, "optim": {**tiny_config["optim"], "max_steps": 8}}
    clear = train({**config, "data": {**config["data"], "cache_dir": str(tmp_path / "clear-cache")}}, tmp_path / "a")
    generate_key_file(tmp_path / "key")
    monkeypatch.setenv("MMDX_KEY_FILE", str(tmp_path / "key"))
    sealed = train({**config, "data": {**config["data"], "cache_dir": str(tmp_path / "enc-cache")}}, tmp_path / "b")
    entries = list((tmp_path / "enc-cache").rglob("*.npz"))
    assert entries and all(e.read_bytes().startswith(b"MMDXENC") for e in entries)
    a, b = load_file(str(clear.last / "model.safetensors")), load_file(str(sealed.last / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


def test_model_card_holds_the_runs_own_metrics(tiny_config, tmp_path, capsys):
    result = train(tiny_config, tmp_path / "run")
    card = (result.best / "README.md").read_text()
    assert card.startswith("---\n") and "weights_sha256:" in card and "## Not a medical device" in card
    best_eval = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    best = max(best_eval, key=lambda h: h.get("macro_auroc", float("-inf")))
    assert f"at step {best['step']}" in card
    macro_row = next(line for line in card.splitlines() if line.startswith("| macro |"))
    assert f"{best['macro_auroc']:.3f} [" in macro_row  # the run's number, with its 95% interval
    assert "synthetic phantom" in card and "| studies |" in card
    assert main(["info", "--model", str(result.best)]) == 0
    assert capsys.readouterr().out.strip() == card.strip()
