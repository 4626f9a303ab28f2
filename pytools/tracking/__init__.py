"""Tracking: Weights & Biases runs (wandb_tracker), lineage (lineage) and the HTML report
(report_html)."""
