"""Data: where reviews come from and how stages hand them on.

``sources`` fetches a dataset (URL or local mirror, checksums, retries); ``store`` reads and
writes the prepared table and the features directories; ``io`` writes every file atomically;
``layout`` names the files stages exchange; ``duplicates`` finds exact and near-duplicate reviews.
"""
