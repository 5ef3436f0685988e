"""Experiment tracking (`logging.tracker`): config, per-evaluation metrics, pictures and the model card
reach TensorBoard, MLflow's local store and W&B's offline run without touching the network; a bad
tracker name is a config error."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import socket

import pytest
import yaml

from multimodal.training.config import load_train_config
from multimodal.training.tracking import check_installed, flatten
from multimodal.training.trainer import train
from preprocessing.errors import ConfigError


@pytest.fixture
def no_network(monkeypatch):
    """Refuse (and record) every connection and name lookup of this process that leaves the machine.
    Loopback and Unix sockets stay open: W&B talks to its own service process through them (that
    process, wandb-core, is not watched here; offline mode keeps it from uploading)."""
    attempts: list[str] = []

    def _local(host) -> bool:
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return host in ("localhost", "")

    real_connect, real_connect_ex, real_lookup = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def guard(real):
        def connect(sock, address, *args):
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
                attempts.append(f"connect {address[0]}")
                raise OSError("network refused by the test")
            return real(sock, address, *args)
        return connect

    def lookup(host, *args, **kwargs):
        if not _local(host):
            attempts.append(f"lookup {host}")
            raise socket.gaierror("name lookup refused by the test")
        return real_lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guard(real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guard(real_connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    yield attempts
    assert attempts == []


def _unset(monkeypatch, *names: str) -> None:
    """Remove environment variables for the test and restore them (or their absence) after it."""
    for name in names:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def test_the_network_guard_refuses_and_records_what_leaves_the_machine(no_network):
    with socket.socket() as sock, pytest.raises(OSError):
        sock.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed
    with pytest.raises(OSError):
        socket.getaddrinfo("example.org", 443)
    assert no_network == ["connect 192.0.2.1", "lookup example.org"]
    no_network.clear()


def test_the_config_is_flattened_to_dotted_scalar_parameters():
    assert flatten({"optim": {"lr": 0.1, "betas": [0.9, 0.99]}, "eval_every": None}) == {
        "optim.lr": 0.1, "optim.betas": "[0.9, 0.99]", "eval_every": "null"}


def test_an_unknown_tracker_names_the_key_and_the_choices(tiny_config):
    with pytest.raises(ConfigError, match=r"logging\.tracker.*'tensorboard'.*'mlflow'.*'wandb'.*'none'"):
        load_train_config(tiny_config, ["logging.tracker=comet"])


def test_a_tracker_whose_package_is_missing_is_refused_naming_the_key(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"logging\.tracker.*pip install 'mmdx\[wandb\]'"):
        check_installed("wandb")
    check_installed("tensorboard")


def test_tensorboard_gets_config_metrics_pictures_and_the_model_card(tiny_config, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train(tiny_config, tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run" / "tb"), size_guidance={"images": 0, "tensors": 0}).Reload()
    tags = events.Tags()
    assert [e.step for e in events.Scalars("val/macro_auroc")] == [2, 4]  # one point per evaluation
    assert {"val/heatmaps", "val/roc", "val/reliability"} <= set(tags["images"])
    assert "model_card/text_summary" in tags["tensors"]
    hparams = yaml.safe_load(next((tmp_path / "run" / "tb").rglob("hparams.yml")).read_text())
    assert hparams["optim.lr"] == 1e-3 and hparams["data.batch_size"] == 4
    assert result.steps == 4


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed (pip install 'mmdx[mlflow]')")
def test_mlflow_logs_into_a_local_store_shared_by_the_runs(tiny_config, tmp_path, monkeypatch, no_network):
    import mlflow

    _unset(monkeypatch, "MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE", "MLFLOW_DISABLE_TELEMETRY")
    for name in ("a", "b"):
        train(tiny_config, tmp_path / name, overrides=["logging.tracker=mlflow", f"seed={ord(name)}"])
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"  # off outside tests too (pytest alone turns it off)
    client = mlflow.MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    runs = client.search_runs([client.get_experiment_by_name("mmdx").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["a", "b"]  # two runs to compare
    run = runs[0]
    assert run.data.params["optim.lr"] == "0.001" and "val/macro_auroc" in run.data.metrics
    assert len(client.get_metric_history(run.info.run_id, "val/macro_auroc")) == 2
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model_card", "val"} <= artifacts
    # save_pretrained writes the model card (README.md) that the tracker logs
    assert [a.path for a in client.list_artifacts(run.info.run_id, "model_card")] == ["model_card/README.md"]


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb is not installed (pip install 'mmdx[wandb]')")
def test_wandb_runs_offline_in_the_run_directory(tiny_config, tmp_path, monkeypatch, no_network):
    _unset(monkeypatch, "WANDB_MODE", "WANDB_ERROR_REPORTING")
    monkeypatch.setenv("WANDB_SILENT", "true")
    train(tiny_config, tmp_path / "run", overrides=["logging.tracker=wandb"])
    assert (os.environ["WANDB_MODE"], os.environ["WANDB_ERROR_REPORTING"]) == ("offline", "false")
    (offline,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    media = {p.name.split("_")[0] for p in (offline / "files" / "media" / "images" / "val").glob("*.png")}
    assert media == {"heatmaps", "roc", "reliability"}
    # The run's records (config, history, artifacts) are protobuf in one file that `wandb sync` uploads;
    # wandb ships no reader for it, so look for the keys themselves.
    (records,) = offline.glob("*.wandb")
    data = records.read_bytes()
    assert b"optim.lr" in data and b"val/macro_auroc" in data and b"model_card" in data
