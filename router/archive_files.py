"""The event archive on disk: Parquet files partitioned by experiment and day.

    <root>/experiment=<id>/day=<YYYY-MM-DD>/part-<first entry id>_<last entry id>.parquet

Hive-style directory names, so DuckDB (``hive_partitioning``) and warehouses read the
experiment and the day as columns. A file holds consecutive entries of one
experiment's stream, in id order; its name says which, so the highest id archived
(``archived_mark``) is known from the names alone, without opening a file. The day
is the UTC date of the entry id's millisecond time (ids grow with time, so days
never go back). Columns: ``entry_id`` (the stream id), ``entry_time`` (its time,
UTC), then one text column per field the entries of the file have (missing: null).

A file is written under a temporary name in its directory, flushed to disk and
renamed: a reader never sees half a file, and a crash leaves at most a temporary
file, removed by the next run. pyarrow is imported inside the functions that need
it: the router's image does without it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

ID_COLUMN, TIME_COLUMN = "entry_id", "entry_time"
_PREFIX, _SUFFIX, _TEMP = "part-", ".parquet", ".tmp"


def entry_key(entry_id: str) -> tuple[int, int]:
    """``"1700000000123-4"`` → ``(1700000000123, 4)``: stream ids compare as these pairs."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def entry_day(entry_id: str) -> str:
    return datetime.fromtimestamp(entry_key(entry_id)[0] / 1000, timezone.utc).strftime("%Y-%m-%d")


def experiment_dir(root: Path, experiment: str) -> Path:
    return Path(root) / f"experiment={experiment}"


def file_name(first: str, last: str) -> str:
    return f"{_PREFIX}{first}_{last}{_SUFFIX}"


def archived_files(root: Path, experiment: str) -> list[tuple[str, str, Path]]:
    """The experiment's files as (first id, last id, path), oldest first; temporary files left out."""
    found = []
    for path in experiment_dir(root, experiment).glob(f"day=*/{_PREFIX}*{_SUFFIX}"):
        first, sep, last = path.name[len(_PREFIX):-len(_SUFFIX)].partition("_")
        try:
            keys = entry_key(first), entry_key(last)
        except ValueError:
            continue  # not one of ours
        if sep:
            found.append((*keys, first, last, path))
    found.sort()
    return [(first, last, path) for _, _, first, last, path in found]


def archived_mark(root: Path, experiment: str) -> str:
    """The highest entry id archived for the experiment ('' none)."""
    lasts = [last for _, last, _ in archived_files(root, experiment)]
    return max(lasts, key=entry_key, default="")


def archived_experiments(root: Path) -> list[str]:
    return sorted(p.name.partition("=")[2] for p in Path(root).glob("experiment=*") if p.is_dir())


def remove_temporary(root: Path) -> int:
    """Delete what a crashed writer left; returns how many files."""
    stray = list(Path(root).glob(f"experiment=*/day=*/.{_PREFIX}*{_TEMP}"))
    for path in stray:
        path.unlink(missing_ok=True)
    return len(stray)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _table(entries: Sequence[tuple[str, dict[str, str]]]):
    import pyarrow as pa

    names = sorted({name for _, fields in entries for name in fields} - {ID_COLUMN, TIME_COLUMN})
    columns = {ID_COLUMN: pa.array([entry_id for entry_id, _ in entries], pa.string()),
               TIME_COLUMN: pa.array([entry_key(entry_id)[0] for entry_id, _ in entries], pa.timestamp("ms", "UTC"))}
    for name in names:
        columns[name] = pa.array([fields.get(name) for _, fields in entries], pa.string())
    return pa.table(columns)


def write_entries(root: Path, experiment: str, entries: Sequence[tuple[str, dict[str, str]]]) -> list[Path]:
    """Archive consecutive entries (id order), one file per day they span; returns the files."""
    import pyarrow.parquet as pq

    written: list[Path] = []
    start = 0
    while start < len(entries):
        day = entry_day(entries[start][0])
        end = start
        while end < len(entries) and entry_day(entries[end][0]) == day:
            end += 1
        chunk = entries[start:end]
        folder = experiment_dir(root, experiment) / f"day={day}"
        folder.mkdir(parents=True, exist_ok=True)
        name = file_name(chunk[0][0], chunk[-1][0])
        temp = folder / f".{name}{_TEMP}"
        with temp.open("wb") as sink:
            pq.write_table(_table(chunk), sink, compression="zstd")
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(temp, folder / name)
        _fsync_dir(folder)
        written.append(folder / name)
        start = end
    return written


def read_entries(root: Path, experiment: str, batch: int = 5000,
                 after: str = "") -> Iterator[tuple[str, dict[str, str]]]:
    """The experiment's archived entries after id ``after`` ('' all), oldest first, as the stream
    gives them: (id, fields). An id in two files (never written so, but copied archives happen)
    comes once."""
    import pyarrow.parquet as pq

    last = entry_key(after) if after else (-1, -1)
    for _, final, path in archived_files(root, experiment):
        if entry_key(final) <= last:
            continue
        parquet = pq.ParquetFile(path)
        columns = [name for name in parquet.schema_arrow.names if name != TIME_COLUMN]
        for record_batch in parquet.iter_batches(batch_size=batch, columns=columns):
            for row in record_batch.to_pylist():
                entry_id = row.pop(ID_COLUMN)
                key = entry_key(entry_id)
                if key <= last:
                    continue
                last = key
                yield entry_id, {name: value for name, value in row.items() if value is not None}
