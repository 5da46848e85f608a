"""The run report (report.html)."""
