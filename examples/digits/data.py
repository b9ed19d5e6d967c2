"""The digits example's input pipeline: the images as Parquet (``digits.parquet``, 64 pixel
columns and a label per row), read in batches with pyarrow. perf-gate times it as the
benchmark ``digits-mlp[data]`` (``data:`` in perf-gate.yaml): items/s, MB/s and the first
batch apart.

``python data.py`` writes ``digits.parquet`` from ``digits.npz``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
PARQUET = HERE / "digits.parquet"
PIXELS = [f"p{i}" for i in range(64)]


def parquet_batches(
    batch_size: int = 64, epochs: int = 10
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(images float32 [n, 64], labels int64 [n])`` batches read from the Parquet file,
    ``epochs`` passes over it (the model's own preprocessing: scaled to 0..1)."""
    import pyarrow.parquet as pq

    for _ in range(epochs):
        reader = pq.ParquetFile(PARQUET)
        for batch in reader.iter_batches(batch_size=batch_size):
            table = batch.to_pydict()
            images = np.stack([np.asarray(table[name], dtype=np.float32) for name in PIXELS], 1)
            yield images / 16.0, np.asarray(table["label"], dtype=np.int64)


def write_parquet() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with np.load(HERE / "digits.npz", allow_pickle=False) as data:
        images, labels = data["x"].astype(np.uint8), data["y"].astype(np.int64)
    columns = {name: images[:, i] for i, name in enumerate(PIXELS)}
    columns["label"] = labels
    pq.write_table(pa.table(columns), PARQUET, row_group_size=256)


if __name__ == "__main__":
    write_parquet()
