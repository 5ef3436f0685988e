"""Fine-tuning the learned labeler: first on reports labelled by the rules, then on hand labels.

CheXbert's recipe (Smit et al., 2020) in two calls of :func:`train_bert_labeler`: ``init=None`` starts
from the pretrained encoder and learns the rules' labels of many reports; ``init=<that directory>``
continues on a smaller hand-labelled set. The loss is the mean over observations of a 4-class cross
entropy (blank / positive / negative / uncertain), each class weighted by its frequency in the training
labels to the power ``-balance`` (CheXbert weighted by inverse frequency, ``balance=1``; the default 0.5
keeps rare positives from drowning in blanks without flooding the output with them). The loop is short on
purpose: AdamW (the heads and attention queries at ten times the encoder's learning rate), linear warm-up
and decay, a fixed number of epochs, one seed. ``freeze_layers`` keeps the embeddings and the encoder's
first N layers fixed; their output is then computed once per report, before the first epoch, and kept in
memory (:func:`frozen_states`), so a step runs only the layers that learn and the heads: with most of a
small encoder frozen, many epochs cost what one did before (no dropout in the frozen part, which sees
each report the same way every epoch).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from multimodal.labeling.bert_labeler import BertLabeler, BertLabelerConfig, class_of
from preprocessing.errors import MmdxError
from preprocessing.labeler.lexicon import DEFAULT_CONVENTION
from preprocessing.report_labeler import ID_FIELDS, label_report, read_reports


def label_targets(labels: list[dict[str, int | None]], observations: list[str]) -> torch.Tensor:
    """Class indices ``[N, O]`` from label dicts (a missing observation counts as blank)."""
    return torch.tensor([[class_of(row.get(o)) for o in observations] for row in labels], dtype=torch.long)


def class_weights(targets: torch.Tensor, balance: float) -> torch.Tensor:
    """Per-observation class weights ``[O, 4]``: frequency ** -balance (a class never seen counts once),
    scaled so that the weighted mean over the training labels is 1."""
    counts = torch.stack([torch.bincount(targets[:, o], minlength=4) for o in range(targets.shape[1])]).float()
    weights = counts.clamp(min=1.0) ** -balance
    return weights * counts.sum(1, keepdim=True) / (weights * counts).sum(1, keepdim=True)


def _freeze(model: BertLabeler, layers: int) -> None:
    """No gradients for the encoder's embeddings and first ``layers`` layers."""
    if layers <= 0:
        return
    for p in model.encoder.embeddings.parameters():
        p.requires_grad_(False)
    for layer in list(model.encoder.encoder.layer)[:layers]:
        for p in layer.parameters():
            p.requires_grad_(False)


def _length_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of indices whose texts have similar lengths (less padding, faster steps): the
    shuffled order is cut into pools of eight batches, each pool sorted by length."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = 8 * batch_size
    batches = []
    for i in range(0, len(order), pool):
        chunk = sorted(order[i:i + pool], key=lengths.__getitem__)
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


@torch.no_grad()
def frozen_states(model: BertLabeler, texts: list[str], layers: int, batch_size: int = 32,
                  progress: bool = False) -> list[torch.Tensor]:
    """Each text's token vectors ``[T_i, H]`` after the embeddings and the encoder's first ``layers`` layers
    (eval mode, no padding kept): the frozen part of the encoder, computed once for all epochs."""
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths: little padding
    out: list[torch.Tensor] = [torch.empty(0)] * len(texts)
    for i in tqdm(range(0, len(order), batch_size), desc="frozen layers", disable=not progress):
        idx = order[i:i + batch_size]
        batch = model.tokenize([texts[j] for j in idx])
        hidden = model.hidden_states(batch["input_ids"], batch["attention_mask"], layers)
        for row, j in enumerate(idx):
            out[j] = hidden[row, :int(batch["attention_mask"][row].sum())].clone()
    model.train(was_training)
    return out


def pad_states(states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token vectors ``[T_i, H]`` -> zero-padded ``[B, T, H]`` and their attention mask ``[B, T]``."""
    hidden = torch.nn.utils.rnn.pad_sequence(states, batch_first=True)
    mask = torch.zeros(hidden.shape[:2], dtype=torch.long)
    for row, s in enumerate(states):
        mask[row, :len(s)] = 1
    return hidden, mask


def train_bert_labeler(texts: list[str], labels: list[dict[str, int | None]], out_dir: str | Path,
                       init: str | Path | None = None, config: BertLabelerConfig | None = None,
                       epochs: int = 2, batch_size: int = 16, lr: float = 5e-5, warmup: float = 0.1,
                       balance: float = 0.5, freeze_layers: int = 0, seed: int = 0, progress: bool = True) -> Path:
    """Fine-tune a :class:`BertLabeler` on ``texts`` and their ``labels`` (observation -> 1/0/-1/None);
    save it to ``out_dir`` and return that directory.

    ``init``: a saved labeler to continue from (the second, hand-labelled stage), else a new one from
    ``config`` (default :class:`BertLabelerConfig`: the packaged MiniLM, CheXpert's 14 observations).
    Reports are shuffled with ``seed``; ``warmup`` is the fraction of steps with a rising learning rate;
    ``balance`` and ``freeze_layers`` as in the module's docstring.
    """
    from tqdm.auto import tqdm

    if len(texts) != len(labels) or not texts:
        raise MmdxError(f"training the labeler needs as many label rows as texts (got {len(texts)} texts, "
                        f"{len(labels)} label rows)")
    torch.manual_seed(seed)
    model = BertLabeler.from_pretrained(init) if init is not None else BertLabeler(config or BertLabelerConfig())
    targets = label_targets(labels, model.config.observations)
    lengths = [len(t) for t in texts]
    steps = epochs * ((len(texts) + batch_size - 1) // batch_size)
    if not 0 <= freeze_layers <= len(model.encoder.encoder.layer):
        raise MmdxError(f"freeze_layers: expected 0 to {len(model.encoder.encoder.layer)} (the encoder's layers), "
                        f"got {freeze_layers}")
    _freeze(model, freeze_layers)
    cache = frozen_states(model, texts, freeze_layers, progress=progress) if freeze_layers > 0 else None
    encoder = [p for p in model.encoder.parameters() if p.requires_grad]
    own = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    optimizer = torch.optim.AdamW([{"params": encoder, "lr": lr}, {"params": own, "lr": 10 * lr}], weight_decay=0.01)
    weights = class_weights(targets, balance)  # [O, 4]
    ramp = max(1, int(warmup * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / ramp, max(0.0, (steps - s) / max(1, steps - ramp))))
    model.train()
    rng = random.Random(seed)
    with tqdm(total=steps, desc="train labeler", disable=not progress) as bar:
        for _ in range(epochs):
            for idx in _length_batches(lengths, batch_size, rng):
                if cache is None:
                    logits = model(**model.tokenize([texts[j] for j in idx]))
                else:
                    logits = model.forward_from(*pad_states([cache[j] for j in idx]), freeze_layers)
                target = targets[idx]  # [B, O]
                nll = -logits.log_softmax(-1).gather(-1, target[..., None])[..., 0]  # [B, O]
                w = weights.gather(1, target.T).T  # [B, O]
                loss = (w * nll).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return model.save_pretrained(out_dir)


def read_label_rows(path: str | Path, id_field: str | None = None) -> dict[str, dict[str, int | None]]:
    """Hand labels from a JSONL file: report id (as text) -> observation values, from each line's
    ``labels`` (or ``values``, as ``mmdx label`` writes them); the id is ``id_field`` or the first of
    id / uid / study_id. Raises :class:`MmdxError` naming the file and line of a bad line."""
    path = Path(path)
    if not path.is_file():
        raise MmdxError(f"{path}: labels file not found")
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            record = json.loads(line)
            labels = record.get("labels", record.get("values"))
            if not isinstance(labels, dict):
                raise ValueError("no 'labels' (or 'values') object")
        except (ValueError, AttributeError) as err:
            raise MmdxError(f"{path}:{n}: {err}") from err
        key = record.get(id_field) if id_field else next((record[k] for k in ID_FIELDS if k in record), None)
        out[str(key)] = labels
    return out


def train_from_files(input_path: str | Path, out_dir: str | Path, labels: str | Path | None = None,
                     fields: list[str] | tuple[str, ...] = ("findings", "impression"), id_field: str | None = None,
                     init: str | Path | None = None, encoder: str | None = None, encoder_layers: int | None = None,
                     convention: str = DEFAULT_CONVENTION, max_length: int | None = None, epochs: int = 2, batch_size: int = 16, lr: float = 5e-5,
                     balance: float = 0.5, freeze_layers: int = 0, seed: int = 0, progress: bool = True) -> Path:
    """``mmdx label-train``: fine-tune the learned labeler on the reports of a JSONL file.

    Without ``labels`` the targets are the rules' labels under ``convention`` (stage one); with
    ``labels`` (a JSONL of hand labels, see :func:`read_label_rows`) only the reports that have hand
    labels are used (stage two, usually with ``init`` = the stage-one directory). ``encoder``,
    ``encoder_layers`` and ``max_length`` configure a new labeler (ignored with ``init``). Returns the saved directory.
    """
    reports = [r for r in read_reports(input_path, fields, id_field) if "error" not in r and r["text"]]
    if labels is None:
        texts = [r["text"] for r in reports]
        targets = [label_report(t, convention=convention).values for t in texts]
    else:
        hand = read_label_rows(labels, id_field)
        chosen = [r for r in reports if str(r["id"]) in hand]
        texts, targets = [r["text"] for r in chosen], [hand[str(r["id"])] for r in chosen]
    config = BertLabelerConfig(**{k: v for k, v in (("encoder", encoder), ("encoder_layers", encoder_layers),
                                                    ("max_length", max_length)) if v is not None})
    return train_bert_labeler(texts, targets, out_dir, init=init, config=config, epochs=epochs,
                              batch_size=batch_size, lr=lr, balance=balance, freeze_layers=freeze_layers, seed=seed,
                              progress=progress)
