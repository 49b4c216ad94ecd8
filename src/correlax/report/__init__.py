"""The static HTML report: classifier table, Pointing Game tables and chart, per-image panels."""

from correlax.report.figures import ImagePanel, panels_for_image
from correlax.report.html import write_report

__all__ = ["ImagePanel", "panels_for_image", "write_report"]
