"""Where the pipeline keeps things: dvc.yaml's directories and the files the stages exchange.

Directories are declared once, in ``dvc.yaml`` (``vars.paths``); stages get them as arguments
and tools read them with :func:`dvc_paths`. Inside those directories, one stage writes a file
that another reads: each such name is spelled here only.
"""

from __future__ import annotations

from pathlib import Path

import yaml

DVC_YAML = Path("dvc.yaml")

# features/<dataset>/<model>/
FEATURIZER = "featurizer.json"
# reports/<dataset>/
DATA_CARD = "data_card.json"
CORRELATE_METRICS = "correlate.json"
# reports/<dataset>/<model>/
TRAIN_SUMMARY = "train.json"
METRICS = "metrics.json"
EXPLAIN_METRICS = "explain.json"
EXPLAIN_TIMING = "explain_timing.json"
BEHAVIOUR = "behaviour.json"
BEHAVIOUR_CASES = "behaviour_cases.json"
CROSS_DOMAIN = "cross_domain.json"
CONTRAST = "contrast.json"
# reports/<dataset>/explain/
SELECTION = "selection.json"
# reports/<dataset>/explain/<model>/
RANKING = "ranking.json"  # the explanation methods, most faithful first
# reports/<dataset>/explain/<model>/<method>/
EXPLANATIONS = "explanations.json"
SP_PICK = "sp_pick.json"
GLOBAL_WORDS = "global_words.csv"
FEATURES_PNG = "features.png"
HEATMAP_PNG = "heatmap.png"
# reports/<dataset>/correlate/
CORRELATIONS = "correlations.csv"
SUSPICIOUS_WORDS = "suspicious_words.csv"
LOLLIPOP_PNG = "lollipop.png"
# reports/html/<dataset>/
REPORT = "report.html"


def dvc_paths(dvc_yaml: Path = DVC_YAML) -> dict[str, str]:
    """The ``vars.paths`` block of dvc.yaml: where the pipeline keeps data, models and reports."""
    doc = yaml.safe_load(Path(dvc_yaml).read_text(encoding="utf-8"))
    for entry in doc.get("vars") or []:
        if isinstance(entry, dict) and "paths" in entry:
            return entry["paths"]
    raise ValueError(f"{dvc_yaml}: no vars.paths block")
