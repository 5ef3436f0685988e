"""Smaller and faster models: magnitude and structured pruning, ONNX export, dynamic int8 quantization.

``quantize`` depends on torch alone (the Predictor uses it); ``prune`` and ``export`` work on saved
model directories (``mmdx prune``, ``mmdx export``).
"""
