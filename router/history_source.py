"""An experiment's event history: the Parquet archive, then the stream past it.

Every offline reader (``croupier-ope``, ``croupier-model``, retraining, reports)
reads events through :func:`iter_history`, so its horizon is the archive's and
not the capped stream's. Entries come oldest first as ``(stream id, fields)``,
the shape ``Store.iter_events`` yields; an entry in both the archive and the
stream is yielded once (the stream is read only past the archive's last id).

Without an archive directory (or before anything was archived) this is the
stream alone. Reading the archive needs pyarrow (the ``archive`` extra), imported
only when there are archived files to read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from croupier.router.archive_files import archived_files, read_entries
from croupier.router.store import Store


async def iter_history(store: Store, experiment_id: str, archive_dir: Path | None = None,
                       batch: int = 5000) -> AsyncIterator[tuple[str, dict]]:
    """Every event of ``experiment_id``, oldest first: archived ones, then the stream's newer ones."""
    last = "-"
    if archive_dir is not None and archived_files(Path(archive_dir), experiment_id):
        # file reads block: offline readers only, never the router's event loop
        for entry in read_entries(Path(archive_dir), experiment_id, batch):
            last = entry[0]
            yield entry
    async for entry in store.iter_events(experiment_id, batch=batch, after=last):
        yield entry
