"""croupier-report against a real redis-server: experiments written through the store's own
recording path (assignments with their propensities, conversions), then reported; and the
errors a marketer can hit."""

from __future__ import annotations

import asyncio
import json
import math
import re

import numpy as np
import pytest

from croupier.router.alerts import Alert
from croupier.router.experiments import parse_experiment
from croupier.router.settings import Settings
from croupier.router.store import AssignmentRecord, BeaconEvent, Store
from croupier.scripts.processes import free_port
from croupier.scripts.report import main

FACTORS = {"headline": {"plain": {}, "savings": {"headline": "Save 20%"}},
           "cta": {"go": {}, "buy": {"cta": "Buy now"}, "try": {"cta": "Try it"}},
           "offer": {"none": {}, "cashback": {"badge": "5% cashback"}}}
EFFECTS = {"savings": 1.0, "buy": 0.8, "cashback": 0.6}
T0 = 1_780_000_000.0


def run(coroutine):
    return asyncio.run(coroutine)


async def record(redis_url: str, doc: dict, visitors: int, rate, segment=lambda i: "", seed: int = 5) -> None:
    """``visitors`` assignments over an hour, drawn with a split that favours the first arms,
    each converting with ``rate(arm)``."""
    store = Store(Settings(redis_url=redis_url))
    rng = np.random.default_rng(seed)
    try:
        experiment = parse_experiment(doc)
        await store.create_experiment(experiment)
        ids = [v.id for v in experiment.variants]
        split = np.linspace(2.0, 1.0, len(ids))
        split /= split.sum()
        records, events = [], []
        for i in range(visitors):
            arm = ids[rng.choice(len(ids), p=split)]
            ts = T0 + 3600.0 * i / visitors
            records.append(AssignmentRecord(experiment.id, arm, f"v{i}", "new", tuple(zip(ids, split.tolist())), ts,
                                            segment=segment(i)))
            if rng.random() < rate(arm):
                events.append(BeaconEvent(experiment.id, arm, f"v{i}", "convert", goal="signup", ts=ts + 1,
                                          segment=segment(i)))
        for start in range(0, len(records), 500):
            await store.record_assignments(records[start:start + 500])
        for event in events:
            await store.record_event(event)
    finally:
        await store.close()


async def alert(redis_url: str, raised: Alert) -> None:
    store = Store(Settings(redis_url=redis_url))
    try:
        await store.raise_alert(raised.id, json.dumps(raised.to_dict()), raised.episode, 1000, raised.experiment)
    finally:
        await store.close()


def report(redis_url: str, experiment: str, out, *extra: str) -> int:
    # --no-archive: a local stack's archive (run/archive) must not join a test's Redis
    return main(["--experiment", experiment, "--redis-url", redis_url, "--out", str(out), "--quiet", "--seed", "2",
                 "--no-archive", *extra])


def factorial_rate(arm: str) -> float:
    return 1 / (1 + math.exp(-(-3.0 + sum(EFFECTS.get(level, 0.0) for level in arm.split("_")))))


def test_factorial_report_has_rollups_and_heatmaps(redis_url, tmp_path):
    doc = {"id": "mvt", "path_prefix": "/mvt/", "policy": "factorial_thompson",
           "variants": [{"id": "page", "upstream": "127.0.0.1:9", "params": {"id": "page"}}],
           "factors": FACTORS, "constraints": [{"headline": "savings", "cta": "try"}]}
    run(record(redis_url, doc, 3000, factorial_rate))
    out = tmp_path / "charts"
    assert report(redis_url, "mvt", out, "--format", "png") == 0
    names = sorted(p.name for p in out.iterdir())
    assert "06-factor-rollups.png" in names
    assert [n for n in names if "heatmap" in n] == ["07-heatmap-1.png", "08-heatmap-2.png", "09-heatmap-3.png"]
    html = tmp_path / "mvt.html"
    assert report(redis_url, "mvt", html) == 0
    text = html.read_text()
    assert "best combination so far is savings, buy, cashback" in text
    assert len(re.findall(r'<img src="data:image/png;base64,', text)) == len(names)


def test_segmented_report_shows_segments(redis_url, tmp_path):
    doc = {"id": "seg", "path_prefix": "/seg/", "segment_keys": ["device"],
           "variants": [{"id": "a", "upstream": "127.0.0.1:9"}, {"id": "b", "upstream": "127.0.0.1:9"}]}
    run(record(redis_url, doc, 1500, {"a": 0.04, "b": 0.08}.get,
               segment=lambda i: "device=mobile" if i % 3 else "device=desktop"))
    run(alert(redis_url, Alert("drift", "seg", "b's rate changed", variant="b", time=T0 + 1800)))
    run(alert(redis_url, Alert("drift", "other", "not this experiment's", variant="a", time=T0 + 1800)))
    out = tmp_path / "seg.html"
    assert report(redis_url, "seg", out) == 0
    text = out.read_text()
    assert 'id="segments"' in text and "2 busiest segments (device)" in text
    assert "1,500" in text
    events = text[text.index('<table id="events">'):]
    assert "drift: b" in events and "drift: a" not in events


def test_unknown_experiment_names_the_option_and_what_exists(redis_url, tmp_path, capsys):
    doc = {"id": "quiet", "path_prefix": "/quiet/", "variants": [{"id": "a", "upstream": "127.0.0.1:9"}]}

    async def create():
        store = Store(Settings(redis_url=redis_url))
        try:
            await store.create_experiment(parse_experiment(doc))
        finally:
            await store.close()

    assert report(redis_url, "nope", tmp_path / "r.html") == 1
    assert "no experiment 'nope' in the registry (it is empty)" in capsys.readouterr().err
    run(create())
    assert report(redis_url, "nope", tmp_path / "r.html") == 1
    assert "--experiment: no experiment 'nope' in the registry (experiments: quiet)" in capsys.readouterr().err
    assert report(redis_url, "quiet", tmp_path / "r.html") == 1
    assert "experiment 'quiet' has no visitors yet" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_redis_unreachable_says_where_it_looked(tmp_path, capsys):
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert report(url, "demo", tmp_path / "r.html") == 1
    err = capsys.readouterr().err
    assert f"Redis is unreachable at {url}" in err and "--redis-url" in err


def test_usage_errors_name_the_option(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--archive", str(tmp_path / "missing"), "--out", str(tmp_path / "r.html")])
    assert exit_.value.code == 2 and "--archive" in capsys.readouterr().err
    (tmp_path / "folder").mkdir()
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "folder")])
    assert "--out" in capsys.readouterr().err


def test_a_plain_experiments_report(redis_url, tmp_path):
    doc = {"id": "plain", "path_prefix": "/plain/",
           "variants": [{"id": "a", "upstream": "127.0.0.1:9"}, {"id": "b", "upstream": "127.0.0.1:9"}]}
    run(record(redis_url, doc, 400, {"a": 0.05, "b": 0.1}.get))
    assert report(redis_url, "plain", tmp_path / "p.html") == 0
    assert "400 logged visitors" in (tmp_path / "p.html").read_text()
