"""Input pipelines for bench/load.py's data table: a Parquet file of 65,536 rows read by row
group (1,024 rows) through a torch DataLoader, each read either waiting 20 ms (object storage)
or decoding for about 20 ms on the CPU, with 0, 2 or 4 loader worker processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

FILE = Path(os.environ.get("BENCH_PARQUET", "/tmp/perf-gate-bench-rows.parquet"))
ROWS = 65_536
GROUP = 1024


def write() -> Path:
    rng = np.random.default_rng(0)
    table = pa.table({"x": rng.standard_normal(ROWS).astype(np.float32), "y": np.arange(ROWS) % 10})
    pq.write_table(table, FILE, row_group_size=GROUP)
    return FILE


class RowGroups(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, mode: str) -> None:
        self.mode = mode

    def __len__(self) -> int:
        return ROWS // GROUP

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        group = pq.ParquetFile(FILE).read_row_group(index).to_pydict()
        x = np.asarray(group["x"], dtype=np.float32)
        if self.mode == "wait":
            time.sleep(0.02)  # a read from object storage
        else:
            for _ in range(600):  # decoding: about 20 ms of numpy per row group
                x = np.sort(np.tanh(x) + 0.5 * np.roll(x, 1))
        return torch.from_numpy(x), torch.tensor(group["y"])


def loader(mode: str, workers: int) -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
    return torch.utils.data.DataLoader(RowGroups(mode), batch_size=None, num_workers=workers)


def wait_0() -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
    return loader("wait", 0)


def wait_2() -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
    return loader("wait", 2)


def wait_4() -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
    return loader("wait", 4)


def cpu_0() -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
    return loader("cpu", 0)


def cpu_2() -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
    return loader("cpu", 2)


def cpu_4() -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
    return loader("cpu", 4)
