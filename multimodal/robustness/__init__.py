"""Robustness: white-box attacks, radiograph corruptions and text reliance, measured (``mmdx robustness``)."""
