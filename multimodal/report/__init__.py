"""A static HTML report of scoring results and evaluations (``mmdx report``): opens from disk, no server."""

from multimodal.report.build import write_report

__all__ = ["write_report"]
