"""Batch jobs: a customer list too large for one request, assigned in the background.

Uploaded once (``POST /api/v1/batches``), kept in Redis as chunks of JSON lines under
the experiment's hash tag, and processed chunk by chunk by the router holding the
job's lease (``lua/hold_lease.lua``); each chunk's results and figures are appended
exactly once (``lua/job_chunk_done.lua``). Any router answers a job's progress and
results, and one that finds a job nobody is processing (its router stopped) takes
the lease and goes on from the first chunk without results. A chunk processed
again assigns nobody twice: the claims are idempotent (``router/batch.py``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time

from croupier.router import rules
from croupier.router.batch import BatchAssigner
from croupier.router.batch_input import CHUNK, parse_lines
from croupier.router.snapshot import SnapshotKeeper
from croupier.router.store import Store, StoreUnavailable

log = logging.getLogger("croupier.batch")

LEASE_MS = 5_000  # a job whose router stopped is resumed this long after its last chunk at most
_JOB = re.compile(r"[0-9a-f]{16}")


def job_id(experiment_id: str, job: str) -> str:
    return f"{experiment_id}.{job}"


def split_job_id(value: str) -> tuple[str, str] | None:
    """(experiment, job) of a job id, or None when it is not one."""
    experiment_id, _, job = value.rpartition(".")
    return (experiment_id, job) if rules.ID.ok(experiment_id) and _JOB.fullmatch(job) else None


def progress(figures: dict[str, str], chunks_done: int) -> dict:
    """A job's figures as the API shows them."""
    total = int(figures.get("total", 0))
    variants = {k.partition(":")[2]: int(v) for k, v in figures.items() if k.startswith("variant:")}
    done = int(figures.get("done", 0))
    return {"experiment": figures.get("experiment"), "channel": figures.get("channel") or None,
            "status": figures.get("status", "running"), "total": total, "done": done,
            "chunks": int(figures.get("chunks", 0)), "chunks_done": chunks_done,
            "new": int(figures.get("new", 0)), "returning": int(figures.get("returning", 0)),
            "errors": int(figures.get("errors", 0)), "full": int(figures.get("full", 0)),
            "variants": variants, "created": float(figures.get("created", 0)),
            "error": figures.get("error") or None}


class Jobs:
    def __init__(self, store: Store, snapshots: SnapshotKeeper, batch: BatchAssigner) -> None:
        self.store, self.snapshots, self.batch = store, snapshots, batch
        self.token = secrets.token_hex(8)  # this router, as a job lease's holder
        self.running: dict[tuple[str, str], asyncio.Task] = {}

    async def create(self, experiment_id: str, tenant: str, channel: str, body: bytes) -> tuple[str, int]:
        """Store an uploaded list and start processing it here; (job id, customers)."""
        lines = body.split(b"\n")
        if lines and not lines[-1].strip():
            lines.pop()
        chunks = [b"\n".join(lines[i:i + CHUNK]).decode("utf-8", "replace") for i in range(0, len(lines), CHUNK)]
        total = sum(1 for line in lines if line.strip())
        job = secrets.token_hex(8)
        await self.store.create_job(experiment_id, job, {
            "experiment": experiment_id, "tenant": tenant, "channel": channel, "total": total,
            "chunks": len(chunks), "status": "running" if chunks else "done", "created": repr(time.time()),
            "done": 0}, chunks)
        self.resume(experiment_id, job)
        return job_id(experiment_id, job), total

    def resume(self, experiment_id: str, job: str) -> None:
        """Process the job here unless this router already is (the lease decides between routers)."""
        key = (experiment_id, job)
        task = self.running.get(key)
        if task is None or task.done():
            self.running[key] = asyncio.create_task(self._run(experiment_id, job), name=f"croupier-job-{job}")

    async def _run(self, experiment_id: str, job: str) -> None:
        store = self.store
        try:
            while await store.hold_job_lease(experiment_id, job, self.token, LEASE_MS):
                found = await store.job(experiment_id, job)
                if found is None:
                    return
                figures, done = found
                if figures.get("status") != "running":
                    return
                if done >= int(figures["chunks"]):
                    await store.finish_job(experiment_id, job, "done")
                    return
                experiment = self.snapshots.current.experiments.get(experiment_id)
                if experiment is None:
                    await store.fail_job(experiment_id, job, f"experiment {experiment_id!r} was removed")
                    return
                text = await store.job_chunk(experiment_id, job, done)
                lines = parse_lines((text or "").split("\n"), first=done * CHUNK + 1)
                result = await self.batch.assign(experiment, figures.get("channel", ""), lines)
                figures_done = result.figures.copy()
                figures_done["done"] = len(lines)
                await store.job_chunk_done(experiment_id, job, done, result.text, figures_done)
        except StoreUnavailable as exc:  # another router (or this one, when asked) resumes it
            log.warning("batch job %s paused: Redis unavailable (%r)", job_id(experiment_id, job), exc)
        except Exception:
            log.exception("batch job %s failed", job_id(experiment_id, job))
            raise
        finally:
            self.running.pop((experiment_id, job), None)

    async def stop(self) -> None:
        """Stop processing (at shutdown): another router resumes the jobs once their leases lapse."""
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
