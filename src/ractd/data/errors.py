"""The data layer's error type: bad input named precisely (source, key, expected vs found)."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset could not be read, validated or written.

    The message always names the source (file path or dataset id), the key when one is at fault, and
    what was expected versus what was found, e.g.
    ``hopper.hdf5: key 'rewards': expected shape (1000,), found (999,)``.
    """


def dataset_error(source: str, message: str, key: str | None = None) -> DatasetError:
    """Build a DatasetError with the house format ``<source>: key '<key>': <message>``."""
    where = f"{source}: key '{key}'" if key is not None else f"{source}"
    return DatasetError(f"{where}: {message}")
