"""Explanation: why a model decides as it does, and how far to trust the answer.

``explaining`` runs LIME per review (seeded by review); ``lime_samples`` and ``lime_fast`` give
LIME's exact explanations without re-tokenizing its samples; ``trust`` measures the explanations
(faithfulness, stability) and picks representative ones (SP-LIME).
"""
