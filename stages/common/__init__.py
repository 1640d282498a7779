"""Code shared by every stage, in rooms by job: params, data, features, modelling, explanation, tracking, report."""
