"""Report: the pages and figures a person reads to choose between the models.

``render`` builds the HTML blocks, escaping review text; ``scorecard`` compares the models
measure by measure and writes the paragraph that says which the evidence favours.
"""
