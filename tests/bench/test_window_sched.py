"""The GPU window's schedule (bench.window_sched) on a fake clock: one timed process at a time with nothing
else on the GPU, in plan order, CPU work overlapping it, slots and limits kept, skips for time."""

import itertools

import pytest

from bench.window_sched import EXCLUSIVE, SHARED, Arbiter, Config, Job, Scheduler, Segment, simulate

CONFIG = Config(slots={"cells": 4, "compile": 2}, batch=2, max_shared_s=1.0, heavy=1, cores=4.0)


def cell_job(i, order=None, cpu=1.0, setup=0.5, timed=0.3, pool="cells", **kw):
    segments = (Segment("cpu", cpu), Segment(SHARED, setup), Segment(EXCLUSIVE, timed), Segment("exit", 0.1))
    return Job(i, f"job{i}", kw.pop("phase", "eager"), order or (1, i), segments, pool, **kw)


def compile_job(i, order=None, codegen=20.0, **kw):
    segments = (
        Segment("cpu", 0.5),
        Segment(SHARED, 0.3),
        Segment("cpu", codegen, 0.05),  # code generation at a low CPU weight
        Segment(SHARED, 0.5),
        Segment(EXCLUSIVE, 0.3),
        Segment("exit", 0.1),
    )
    return Job(i, f"compile{i}", "compile", order or (1, i), segments, "compile", **kw)


def intervals(sim, kind):
    return [(j, b, e) for j, t in sim.traces.items() for k, b, e in t.turns if k == kind]


def assert_exclusive_alone(sim):
    """No two exclusive turns overlap, and no shared turn overlaps an exclusive one."""
    timed = sorted(intervals(sim, EXCLUSIVE), key=lambda x: x[1])
    for (_, _, end), (_, begin, _) in itertools.pairwise(timed):
        assert begin >= end - 1e-9
    for (a, b0, b1), (c, s0, s1) in itertools.product(timed, intervals(sim, SHARED)):
        assert a == c or s1 <= b0 + 1e-9 or s0 >= b1 - 1e-9, (a, b0, b1, c, s0, s1)


def test_one_exclusive_turn_at_a_time_with_nothing_shared_beside_it():
    jobs = [cell_job(i, cpu=0.2 + 0.3 * (i % 5), setup=0.1 + 0.2 * (i % 3)) for i in range(30)]
    jobs += [compile_job(30 + i) for i in range(4)]
    sim = simulate(jobs, CONFIG, start=0.0, hard_end=1e6)
    assert all(t.outcome == "ok" for t in sim.traces.values())
    assert_exclusive_alone(sim)
    assert sim.exclusive_s == pytest.approx(30 * 0.3 + 4 * 0.3)


def test_cpu_work_and_code_generation_overlap_the_timed_turns():
    jobs = [compile_job(0, codegen=5.0)] + [cell_job(i) for i in range(1, 9)]
    sim = simulate(jobs, CONFIG, start=0.0, hard_end=1e6)
    compiling = (sim.traces[0].turns[0][2], sim.traces[0].turns[1][1])  # between its two shared turns
    timed_meanwhile = [b for _, b, _ in intervals(sim, EXCLUSIVE) if compiling[0] <= b <= compiling[1]]
    assert timed_meanwhile  # other cells were timed while it generated code
    serial = sum(s.seconds for j in jobs for s in j.segments)
    assert sim.end < serial / 2  # far less than running the processes one after another


def test_ready_processes_are_timed_in_plan_order_and_second_processes_after_first():
    jobs = [cell_job(i, order=(1, i)) for i in range(6)]
    jobs += [cell_job(6 + i, order=(2, i), needs=i) for i in range(6)]
    sim = simulate(jobs, CONFIG, start=0.0, hard_end=1e6)
    for i in range(6):
        assert sim.traces[6 + i].start >= sim.traces[i].end  # needs its first process to have ended
    grants = [j for _, kind, j in sim.timeline if kind == EXCLUSIVE]
    firsts = [j for j in grants if j < 6]
    assert firsts == sorted(firsts)


def test_slots_heavy_and_alone_limits_hold_at_every_moment():
    jobs = [cell_job(i, heavy=i % 2 == 0) for i in range(12)]
    jobs += [compile_job(12 + i) for i in range(5)]
    jobs += [cell_job(20, order=(3, 0), alone=True)]
    sim = simulate(jobs, CONFIG, start=0.0, hard_end=1e6)
    by_id = {j.id: j for j in jobs}
    events = sorted({t for tr in sim.traces.values() for t in (tr.start, tr.end)})
    for moment in events:
        alive = [by_id[j] for j, tr in sim.traces.items() if tr.start <= moment < tr.end]
        assert sum(j.pool == "cells" for j in alive) <= 4 and sum(j.pool == "compile" for j in alive) <= 2
        assert sum(j.heavy for j in alive) <= 1
    last = sim.traces[20]
    assert all(tr.end <= last.start for j, tr in sim.traces.items() if j != 20)


def test_a_job_that_cannot_be_timed_by_the_end_is_skipped_and_cheaper_ones_still_run():
    jobs = [cell_job(0, timed=1.0), cell_job(1, timed=50.0), cell_job(2, timed=1.0)]
    sim = simulate(jobs, Config(slots={"cells": 3}, batch=3, cores=4.0), start=0.0, hard_end=10.0)
    assert [sim.traces[i].outcome for i in range(3)] == ["ok", "skipped for time", "ok"]
    late = simulate([cell_job(0, cpu=20.0)], CONFIG, start=0.0, hard_end=10.0)
    assert late.traces[0].outcome == "skipped for time" and late.traces[0].start is None


def test_a_second_process_whose_first_was_skipped_is_skipped_too():
    jobs = [cell_job(0, timed=50.0), cell_job(1, order=(2, 0), needs=0)]
    sim = simulate(jobs, CONFIG, start=0.0, hard_end=10.0)
    assert sim.traces[0].outcome == sim.traces[1].outcome == "skipped for time"


def test_fixed_steps_first_and_the_self_check_after_the_first_shared_period():
    calibration = Job(0, "calibration", "calibration", (0, 0), (Segment(EXCLUSIVE, 5.0),), None)
    selfcheck = Job(1, "selfcheck", "selfcheck", (0, 1), (Segment(EXCLUSIVE, 10.0),), None, after_shared=True)
    jobs = [calibration, selfcheck] + [cell_job(2 + i) for i in range(4)]
    sim = simulate(jobs, CONFIG, start=0.0, hard_end=1e6)
    assert sim.traces[0].timed[0] == 0.0
    first_shared = min(b for _, b, _ in intervals(sim, SHARED))
    assert first_shared >= 5.0 and sim.traces[1].timed[0] >= first_shared
    assert all(sim.traces[j].timed[0] >= sim.traces[1].timed[1] for j in range(2, 6))
    assert_exclusive_alone(sim)


def test_cpu_cores_are_shared_by_weight_none_faster_than_one_core():
    light = Job(0, "light", "compile", (1, 0), (Segment("cpu", 10.0, 0.1),), "compile")
    heavy = [Job(i, f"h{i}", "eager", (1, i), (Segment("cpu", 10.0),), "cells") for i in (1, 2)]
    sim = simulate([light, *heavy], Config(slots={"cells": 2, "compile": 1}, cores=2.5), 0.0, 1e6)
    # the two weight-1 jobs get a core each (capped), the light one the half core left
    assert sim.traces[1].end == pytest.approx(10.0) and sim.traces[2].end == pytest.approx(10.0)
    assert sim.traces[0].end == pytest.approx(10.0 + (10.0 - 0.5 * 10.0))


def test_arbiter_periods_close_on_batch_or_time_and_wait_for_shared_holders():
    arb = Arbiter(batch=2, max_shared_s=1.0)
    arb.want(1, SHARED)
    assert arb.step(0.0) == [(1, SHARED)]
    arb.want(2, EXCLUSIVE, (1, 2))
    assert arb.step(0.5) == [] and arb.wake_at() == 1.0  # one ready: the period stays open up to 1 s
    arb.want(3, SHARED)
    assert arb.step(0.6) == [(3, SHARED)]  # still open: more set-up joins it
    assert arb.step(1.0) == []  # closed at 1 s, but two shared turns are still held
    arb.want(4, SHARED)
    arb.release(1, 1.1)
    arb.release(3, 1.2)
    assert arb.step(1.2) == [(2, EXCLUSIVE)]  # the shared request that came late waits
    arb.release(2, 1.5)
    assert arb.step(1.5) == [(4, SHARED)]  # nothing else ready: the next shared period opens
    arb.exit_begins(4)
    arb.want(5, EXCLUSIVE, (1, 5))
    assert arb.step(1.6) == []  # a process ending holds the GPU until it is gone
    arb.forget(4, 1.7)
    assert arb.step(1.7) == [(5, EXCLUSIVE)]


def test_scheduler_cancels_a_failed_cells_later_processes_and_adds_a_retry():
    jobs = [cell_job(0, cell_key=("a",)), cell_job(1, order=(2, 0), needs=0, cell_key=("a",)), cell_job(2)]
    sched = Scheduler(jobs, CONFIG, hard_end=1e6)
    assert [j.id for j in sched.start_due(0.0)] == [0, 2]
    sched.cancel_cell(("a",), "not run: job0 ended error")
    assert sched.ended[1] == "not run: job0 ended error" and not sched.pending
    retry = cell_job(3, alone=True, cell_key=("b",))
    second = cell_job(4, order=(2, 1), needs=2)
    sched.add(second)
    sched.add(retry, replaces=2)
    assert sched.jobs[4].needs == 3


def test_a_process_ending_outside_a_turn_holds_back_the_next_timed_one():
    arb = Arbiter(batch=2, max_shared_s=1.0)
    arb.want(1, EXCLUSIVE, (1, 1))
    arb.want(2, EXCLUSIVE, (1, 2))
    assert arb.step(0.0) == [(1, EXCLUSIVE)]
    arb.exit_begins(9)  # a worker that failed outside a turn: its CUDA context is going away
    arb.release(1, 0.5)
    assert arb.step(0.5) == []
    arb.forget(9, 0.6)
    assert arb.step(0.6) == [(2, EXCLUSIVE)]
    assert arb.timed == [(1, 0.0, 0.5), (2, 0.6, None)]
