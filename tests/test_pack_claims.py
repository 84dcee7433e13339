"""Pack claims: one worker takes the next queued run and the queued runs that fit it, each with
its own attempt token and one shared pack id, never a run twice, on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import os
import queue as stdlib_queue
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fino.backends.base import TaskConfig
from fino.store import queue
from fino.store.db import Store
from fino.store.models import Event, Run
from fino.train.config import Algo, RunConfig


def same_but_seed(head: dict[str, Any], other: dict[str, Any]) -> bool:
    """Two configs that differ at most in their seed share a pack (module level: it pickles)."""
    return {**head, "seed": 0} == {**other, "seed": 0}


def add(store: Store, algo: Algo, seeds: range, **kwargs: Any) -> list[int]:
    """Queue one cube-single run of `algo` per seed; their ids."""
    configs = [RunConfig(task=TaskConfig(name="cube-single"), algo=algo, seed=seed)
               for seed in seeds]
    return queue.add_runs(store, configs, **kwargs)


def rows(store: Store, run_ids: list[int]) -> dict[int, Run]:
    with store.read() as session:
        found = session.scalars(select(Run).where(Run.id.in_(run_ids))).all()
        for run in found:
            session.expunge(run)
    return {run.id: run for run in found}


def claim_messages(store: Store, run_id: int) -> list[str]:
    with store.read() as session:
        return list(session.scalars(select(Event.message).where(
            Event.run_id == run_id, Event.new_status == "running").order_by(Event.id)))


def test_a_pack_is_the_next_run_and_the_queued_runs_that_fit_it_in_claim_order(
        store: Store) -> None:
    first = add(store, "fino", range(2))
    other = add(store, "fql", range(1))  # older than `later`, but does not fit
    later = add(store, "fino", range(2, 4))
    urgent = add(store, "fino", range(4, 5), priority=5)

    claims = queue.claim_pack(store, host="h", pid=7, size=4, fits=same_but_seed)

    assert [c.run_id for c in claims] == [*urgent, *first, later[0]]
    pack = claims[0].pack_id
    assert pack and {c.pack_id for c in claims} == {pack}
    assert len({c.token for c in claims}) == 4
    stored = rows(store, [*first, *other, *later, *urgent])
    for claim in claims:
        run = stored[claim.run_id]
        assert (run.status, run.attempts, run.attempt_token, run.pack_id) == (
            "running", 1, claim.token, pack)
        assert (run.worker_host, run.worker_pid) == ("h", 7)
        assert run.started_at is not None and run.heartbeat_at is not None
        assert claim_messages(store, claim.run_id) == [f"claimed by h:7 in pack {pack} (4 runs)"]
    for run_id in (*other, later[1]):
        assert (stored[run_id].status, stored[run_id].pack_id) == ("queued", None)


def test_a_claim_of_one_run_has_no_pack(store: Store) -> None:
    fino = add(store, "fino", range(2))
    fql = add(store, "fql", range(1))
    alone = queue.claim_pack(store, host="h", pid=1, size=1, fits=same_but_seed)
    assert [(c.run_id, c.pack_id) for c in alone] == [(fino[0], None)]
    # Nothing else fits the next run: claimed alone, however large the pack asked for.
    queue.claim_next(store, host="h", pid=1)
    unfit = queue.claim_pack(store, host="h", pid=1, size=4, fits=same_but_seed)
    assert [(c.run_id, c.pack_id) for c in unfit] == [(fql[0], None)]
    assert rows(store, fql)[fql[0]].pack_id is None
    assert claim_messages(store, fql[0]) == ["claimed by h:1"]
    assert queue.claim_pack(store, host="h", pid=1, size=4, fits=same_but_seed) == []


def test_a_pack_is_taken_only_among_the_runs_given(store: Store) -> None:
    ids = add(store, "fino", range(5))
    claims = queue.claim_pack(store, host="h", pid=1, size=3, fits=same_but_seed,
                              among=[ids[3], ids[1], ids[4]])
    assert [c.run_id for c in claims] == [ids[1], ids[3], ids[4]]
    assert queue.claim_pack(store, host="h", pid=1, size=3, fits=same_but_seed,
                            among=[ids[1]]) == []  # running now, not queued


def test_a_pack_claim_passes_over_the_runs_excluded(store: Store) -> None:
    ids = add(store, "fino", range(4))
    claims = queue.claim_pack(store, host="h", pid=1, size=2, fits=same_but_seed,
                              exclude=[ids[0], ids[2]])
    assert [c.run_id for c in claims] == [ids[1], ids[3]]


def test_a_pack_claim_raises_the_allowance_of_each_run(store: Store) -> None:
    ids = add(store, "fino", range(3), max_attempts=2)
    queue.claim_pack(store, host="h", pid=1, size=2, fits=same_but_seed, max_attempts=4)
    queue.claim_pack(store, host="h", pid=1, size=2, fits=same_but_seed, max_attempts=1)
    stored = rows(store, ids)
    assert [stored[run_id].max_attempts for run_id in ids] == [4, 4, 2]


def test_a_pack_size_below_one_is_refused(store: Store) -> None:
    add(store, "fino", range(1))
    with pytest.raises(ValueError, match="size >= 1"):
        queue.claim_pack(store, host="h", pid=1, size=0, fits=same_but_seed)
    assert rows(store, [1])[1].status == "queued"


def test_a_run_back_in_the_queue_leaves_its_pack_and_runs_alone_next(store: Store) -> None:
    ids = add(store, "fino", range(2))
    claims = queue.claim_pack(store, host="h", pid=1, size=2, fits=same_but_seed)
    assert queue.transition(store, ids[0], ("running",), "queued", token=claims[0].token)
    stored = rows(store, ids)
    assert (stored[ids[0]].pack_id, stored[ids[0]].worker_host) == (None, None)
    assert stored[ids[1]].pack_id == claims[1].pack_id  # its pack mate trains on
    again = queue.claim_next(store, host="h", pid=2)
    assert again is not None and (again.run_id, again.pack_id) == (ids[0], None)
    assert rows(store, ids)[ids[0]].attempts == 2


# ---- several processes claiming packs at once --------------------------------------------


def _claim_packs_until_empty(url: str, barrier: Any, out: Any) -> None:
    """Claim packs of up to 4 until none is left; put the packs claimed ([(id, pack id)...])."""
    store = Store(url)
    barrier.wait(timeout=60)
    packs = []
    while claims := queue.claim_pack(store, host="t", pid=os.getpid(), size=4,
                                     fits=same_but_seed):
        packs.append([(c.run_id, c.pack_id) for c in claims])
        time.sleep(0.05)  # as a worker starts its pack: the others get their turn meanwhile
    store.dispose()
    out.put(packs)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_claiming_packs_at_once_claim_every_run_exactly_once(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = (f"sqlite:///{tmp_path / 'experiments.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_url"))
    store = Store(url)
    fino, fql = add(store, "fino", range(6)), add(store, "fql", range(6))
    spawn = multiprocessing.get_context("spawn")
    barrier, out = spawn.Barrier(3), spawn.Queue()
    workers = [spawn.Process(target=_claim_packs_until_empty, args=(url, barrier, out))
               for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        packs = [pack for _ in workers for pack in out.get(timeout=60)]
    except stdlib_queue.Empty:
        pytest.fail("a claiming process gave no answer within 60 s")
    finally:
        for worker in workers:
            worker.join(timeout=30)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]

    claimed = [run_id for pack in packs for run_id, _ in pack]
    assert sorted(claimed) == sorted(fino + fql)  # every run, none twice
    stored = rows(store, claimed)
    for pack in packs:
        pack_id = pack[0][1]
        assert 1 <= len(pack) <= 4 and (pack_id is None) == (len(pack) == 1)
        assert {run_id in fino for run_id, _ in pack} in ({True}, {False})  # one kind a pack
        assert {p for _, p in pack} == {stored[run_id].pack_id for run_id, _ in pack} == {pack_id}
    shared = [pack[0][1] for pack in packs if len(pack) > 1]
    assert len(set(shared)) == len(shared)  # a pack id per pack
    assert Counter((run.status, run.attempts) for run in stored.values()) == {("running", 1): 12}
    with store.read() as session:
        claims = session.scalars(select(Event.run_id).where(Event.new_status == "running")).all()
    assert sorted(claims) == sorted(claimed)
    store.dispose()
