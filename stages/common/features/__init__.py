"""Features: the one text → features transform, used for training, evaluation, LIME and prediction.

``tokens`` reads words as every featurizer and explainer does; ``featurizer`` fits a vocabulary
on the training split and turns text into a bag of words (MLP) or word-id sequences (LSTM).
"""
