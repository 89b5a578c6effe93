"""An experiment's event history: the Parquet archive, then the stream past it.

Every offline reader (``croupier-ope``, ``croupier-model``, retraining, reports)
reads events through :func:`iter_history`, so its horizon is the archive's and
not the capped stream's. Entries come oldest first as ``(stream id, fields)``,
the shape ``Store.iter_events`` yields; an entry in both the archive and the
stream is yielded once (the stream is read only past the archive's last id).

Without an archive directory (or before anything was archived) this is the
stream alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from croupier.router.store import Store


async def iter_history(store: Store, experiment_id: str, archive_dir: Path | None = None,
                       batch: int = 5000) -> AsyncIterator[tuple[str, dict]]:
    """Every event of ``experiment_id``, oldest first: archived ones, then the stream's newer ones."""
    # The archive part is filled in with the archiver (router/archive.py); until then, the stream.
    async for entry in store.iter_events(experiment_id, batch=batch):
        yield entry
