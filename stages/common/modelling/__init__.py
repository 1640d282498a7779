"""Modelling: building, training, saving and scoring the Keras models.

``models`` builds the architectures; ``training`` fits them from scratch or fine-tunes a source
model (new words, weight soup); ``persistence`` saves and loads them byte-stably; ``prediction``
is text in, probability out (:class:`TextModel`, ``load_text_model``); ``scoring`` the headline
test metrics; ``pyfunc`` the MLflow model that serves raw text.
"""
