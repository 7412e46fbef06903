"""The GPU window's schedule: which worker process may use the GPU when, and which process starts next.

A window measures every cell in fresh worker processes (two per cell, as any sweep; bench.run), but most of
a process's life is work on the CPU (starting, building the model, Inductor's code generation for
`torch.compile`, building the reference model for the output agreement). So many processes live at once,
each on the CPU cores it can get, and they take turns on the one GPU (bench.worker.Turns):

- a *shared* turn (moving the model to the GPU, the backend's set-up, the first forward, the output agreement,
  the process's exit with its CUDA context) may run beside other shared turns;
- an *exclusive* turn (the timed part: warm-up, sampling and the calibration workload beside it) runs with
  nothing else on the GPU: no other process holds or gets any turn meanwhile.

`Arbiter` grants the turns in periods. In a shared period every waiting shared turn is granted; the period
closes once `batch` processes are ready to be timed, or `max_shared_s` after it opened when one is ready, or
when no shared work is left while one is ready. When the last shared turn is released, the ready processes
are timed one after another in plan order (`Job.order`), then the next shared period opens. Batching the
shared work this way costs the GPU one short shared period per batch of timed cells, not one per cell.

`Scheduler` adds the rest of the policy: processes start in plan order while their pool has a free slot (a
pool for ordinary cells, one for cold `torch.compile` processes, which hold a slot through minutes of
code generation), a job waits for the job it `needs` (a cell's second process for its first, so a compile
cache is warm and a failed cell stops), at most `heavy` memory-hungry processes live at once, and nothing
starts or is timed that could not end by `hard_end` (it is skipped for time instead). The same scheduler
runs a real window (bench.window_run) and its plan (`simulate`: the jobs' estimated segments on a fake clock,
the CPU cores shared fairly among the processes that are using them).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

SHARED, EXCLUSIVE = "shared", "exclusive"
KINDS = ("cpu", SHARED, EXCLUSIVE, "exit")


@dataclass(frozen=True)
class Segment:
    """One stretch of a job: CPU work ("cpu"), a shared or exclusive GPU turn, or the process's exit (a
    shared turn: a CUDA context going away is GPU work), with its estimated seconds (on one free core for
    CPU work and shared turns, which are mostly CPU work in the driver and libraries). `weight`:
    its share of a busy CPU against others' (CFS: a thread at nice 10 weighs 110 against 1024 at nice 0)."""

    kind: str
    seconds: float
    weight: float = 1.0

    def __post_init__(self):
        if self.kind not in KINDS or not self.seconds >= 0:
            raise ValueError(f"bad segment {self}")


@dataclass(frozen=True)
class Job:
    """One worker process of a window (or the calibration, the self-check) as the scheduler sees it."""

    id: int
    label: str
    phase: str
    order: tuple  # exclusive turns go to the ready job with the lowest order
    segments: tuple[Segment, ...]
    pool: str | None = "cells"  # None: needs no slot (the calibration, the self-check)
    needs: int | None = None  # a job that must have ended first
    heavy: bool = False
    alone: bool = False  # starts only once every other job has ended
    after_shared: bool = False  # starts only once a shared period has opened
    cell_key: tuple | None = None
    round: int = 0

    @property
    def exclusive_s(self) -> float:
        return sum(s.seconds for s in self.segments if s.kind == EXCLUSIVE)

    def until_timed_s(self) -> float:
        """Estimated seconds from its start to the end of its exclusive turn, with no waiting."""
        total = 0.0
        for s in self.segments:
            total += s.seconds
            if s.kind == EXCLUSIVE:
                return total
        return total


@dataclass(frozen=True)
class Config:
    slots: dict[str, int]  # pool -> processes alive at once
    batch: int = 8  # ready processes that close a shared period
    max_shared_s: float = 2.0
    heavy: int = 4  # heavy processes alive at once
    cores: float = 14.0  # CPU cores for the workers (the timed process has cores of its own)


class Arbiter:
    """The GPU's turns (see the module docstring). Times are seconds on the caller's clock."""

    def __init__(self, batch: int = 8, max_shared_s: float = 2.0):
        self.batch, self.max_shared_s = batch, max_shared_s
        self.mode, self.open, self.opened_at = EXCLUSIVE, False, 0.0
        self.shared: set[int] = set()
        self.exclusive: int | None = None
        self.want_shared: list[int] = []
        self.want_exclusive: dict[int, tuple] = {}
        self.exiting: set[int] = set()
        self.shared_periods = 0
        self.timed: list[tuple[int, float, float | None]] = []  # (job, start, end) of exclusive turns

    def want(self, job: int, kind: str, order: tuple = ()) -> None:
        if kind == SHARED:
            self.want_shared.append(job)
        else:
            self.want_exclusive[job] = order

    def release(self, job: int, now: float) -> None:
        self.shared.discard(job)
        if self.exclusive == job:
            self.exclusive = None
            start = self.timed[-1][1]
            self.timed[-1] = (job, start, now)

    def exit_begins(self, job: int) -> None:
        """The job's process is ending (its CUDA context going away): the GPU is not quiet until it has."""
        self.shared.discard(job)
        self.exiting.add(job)

    def forget(self, job: int, now: float) -> None:
        """The job's process has ended (or was killed): drop whatever it held or waited for."""
        self.release(job, now)
        self.exiting.discard(job)
        self.want_exclusive.pop(job, None)
        if job in self.want_shared:
            self.want_shared.remove(job)

    def _open_period(self, now: float) -> None:
        self.mode, self.open, self.opened_at = SHARED, True, now
        self.shared_periods += 1

    def next_exclusive(self) -> int | None:
        return min(self.want_exclusive, key=self.want_exclusive.get) if self.want_exclusive else None

    def step(self, now: float) -> list[tuple[int, str]]:
        """The turns to grant now, as (job, kind); call on every event and when `wake_at` comes."""
        grants: list[tuple[int, str]] = []
        if self.exclusive is not None:
            return grants
        if self.mode == SHARED and self.open:
            grants += [(job, SHARED) for job in self.want_shared]
            self.shared.update(self.want_shared)
            self.want_shared = []
            ready = len(self.want_exclusive)
            idle = not self.shared and not self.exiting
            if ready and (ready >= self.batch or idle or now - self.opened_at >= self.max_shared_s):
                self.open = False
        if self.mode == SHARED and not self.open and not self.shared and not self.exiting:
            self.mode = EXCLUSIVE
        if self.mode == EXCLUSIVE and not self.shared and not self.exiting:
            job = self.next_exclusive()
            if job is not None:
                del self.want_exclusive[job]
                self.exclusive = job
                self.timed.append((job, now, None))
                grants.append((job, EXCLUSIVE))
            elif self.want_shared:
                self._open_period(now)
                return grants + self.step(now)
        return grants

    def wake_at(self) -> float | None:
        """When an open shared period with a ready job times out (the caller's loop should step then)."""
        if self.mode == SHARED and self.open and self.want_exclusive:
            return self.opened_at + self.max_shared_s
        return None


class Scheduler:
    """The window's policy over `Arbiter` (see the module docstring). The caller starts what `start_due`
    returns, reports each job's turn requests, releases and end, and grants what `grants` returns; a job
    in `grants` with kind "skip" could not be timed by `hard_end` and must be stopped."""

    def __init__(self, jobs: Iterable[Job], config: Config, hard_end: float):
        self.config, self.hard_end = config, hard_end
        self.arbiter = Arbiter(config.batch, config.max_shared_s)
        self.jobs = {job.id: job for job in jobs}
        self.pending = list(self.jobs.values())
        self.alive: dict[int, Job] = {}
        self.ended: dict[int, str] = {}  # job -> outcome ("ok", an error status, "skipped for time", ...)

    def _fits(self, job: Job, now: float) -> bool:
        return now + job.until_timed_s() <= self.hard_end

    def start_due(self, now: float) -> list[Job]:
        """Jobs to start now (they count as alive from here), in plan order; jobs that could no longer be
        timed by `hard_end`, or whose needed job did not end well, end here (see `ended`)."""
        started = []
        for job in list(self.pending):
            needed = self.ended.get(job.needs) if job.needs is not None else "ok"
            if needed == "skipped for time":
                self._end_pending(job, needed)
                continue
            if needed not in (None, "ok"):
                self._end_pending(job, f"not run: {self.jobs[job.needs].label} ended {needed}")
                continue
            if not self._fits(job, now):
                self._end_pending(job, "skipped for time")
                continue
            if needed is None or not self._room(job):
                continue
            self.pending.remove(job)
            self.alive[job.id] = job
            started.append(job)
        return started

    def _room(self, job: Job) -> bool:
        if job.alone:
            return not self.alive and all(j.alone for j in self.pending)
        if job.after_shared and self.arbiter.shared_periods == 0:
            return False
        if job.pool is not None:
            busy = sum(1 for j in self.alive.values() if j.pool == job.pool)
            if busy >= self.config.slots.get(job.pool, 0):
                return False
        return not job.heavy or sum(j.heavy for j in self.alive.values()) < self.config.heavy

    def _end_pending(self, job: Job, outcome: str) -> None:
        self.pending.remove(job)
        self.ended[job.id] = outcome

    def add(self, job: Job, replaces: int | None = None) -> None:
        """A job decided on during the run (a process to run again alone after running out of memory),
        in place of job `replaces` for the jobs that need it."""
        self.jobs[job.id] = job
        self.pending.append(job)
        if replaces is not None:
            self.pending = [replace(j, needs=job.id) if j.needs == replaces else j for j in self.pending]
            self.jobs.update((j.id, j) for j in self.pending)

    def cancel_cell(self, cell_key: tuple, outcome: str) -> None:
        """End the pending jobs of a cell (its earlier process failed: the cell's record says why)."""
        for job in [j for j in self.pending if j.cell_key == cell_key]:
            self._end_pending(job, outcome)

    def want(self, job: int, kind: str) -> None:
        self.arbiter.want(job, kind, self.jobs[job].order)

    def release(self, job: int, now: float) -> None:
        self.arbiter.release(job, now)

    def exit_begins(self, job: int) -> None:
        self.arbiter.exit_begins(job)

    def end(self, job: int, now: float, outcome: str) -> None:
        """The job's process is gone (done, failed, killed or skipped)."""
        self.arbiter.forget(job, now)
        self.alive.pop(job, None)
        self.ended.setdefault(job, outcome)

    def grants(self, now: float) -> list[tuple[int, str]]:
        out = []
        while True:
            step = self.arbiter.step(now)
            skip = [
                (j, k) for j, k in step if k == EXCLUSIVE and now + self.jobs[j].exclusive_s > self.hard_end
            ]
            for job, _ in skip:  # cannot be timed by the end: give the turn back, stop the job
                self.arbiter.release(job, now)
                self.arbiter.timed.pop()
                self.arbiter.exit_begins(job)  # nothing is timed until the caller has ended it (`end`)
                self.ended[job] = "skipped for time"
            out += [g for g in step if g not in skip] + [(j, "skip") for j, _ in skip]
            if not skip:
                return out

    def done(self) -> bool:
        return not self.pending and not self.alive

    def wake_at(self) -> float | None:
        return self.arbiter.wake_at()


# ------------------------------------------------------------------------------------------- simulation


@dataclass
class Trace:
    """One job in a simulated (or real) window: when it started, asked to be timed, was timed, ended."""

    job: Job
    start: float | None = None
    ready: float | None = None
    timed: tuple[float, float] | None = None
    end: float | None = None
    outcome: str | None = None
    turns: list[list] = field(default_factory=list)  # [kind, granted, released] of each GPU turn


@dataclass
class Simulation:
    traces: dict[int, Trace]
    end: float  # when the last job ended
    exclusive_s: float  # GPU time in exclusive turns
    shared_periods: int
    cpu_s: float = 0.0  # core-seconds of CPU work done
    timeline: list[tuple[float, str, int]] = field(default_factory=list)  # (time, event, job)
    # (from, to, CPU cores in use, GPU: "exclusive", "shared" or "idle")
    usage: list[tuple[float, float, float, str]] = field(default_factory=list)


def simulate(jobs: list[Job], config: Config, start: float, hard_end: float) -> Simulation:
    """Run the scheduler on estimated segments: CPU work shares `config.cores` fairly among the jobs doing
    it (processor sharing), exclusive turns take their estimate, and nothing else is random."""
    sched = Scheduler(jobs, config, hard_end)
    traces = {job.id: Trace(job) for job in jobs}
    now, cpu_done = start, 0.0
    position: dict[int, int] = {}  # job -> index of its current segment
    remaining: dict[int, float] = {}  # job -> seconds left in its current segment
    running: set[int] = set()  # jobs whose current segment is progressing (CPU work, granted turns)
    timeline: list[tuple[float, str, int]] = []
    busy: list[tuple[float, float, float, str]] = []  # (from, to, cores in use, GPU state)
    wakes: list[float] = []

    def enter(job_id: int) -> None:
        """Move the job to its next segment (or end it)."""
        job = sched.jobs[job_id]
        i = position[job_id] = position.get(job_id, -1) + 1
        if i == len(job.segments):
            sched.end(job_id, now, "ok")
            traces[job_id].end, traces[job_id].outcome = now, "ok"
            timeline.append((now, "end", job_id))
            return
        seg = job.segments[i]
        remaining[job_id] = seg.seconds
        if seg.kind == "cpu":
            running.add(job_id)
        else:
            if seg.kind == EXCLUSIVE:
                traces[job_id].ready = now
            sched.want(job_id, EXCLUSIVE if seg.kind == EXCLUSIVE else SHARED)

    def segment(job_id: int) -> Segment:
        return sched.jobs[job_id].segments[position[job_id]]

    def speeds() -> dict[int, float]:
        """Exclusive turns at full speed (cores of their own); the CPU work shares `config.cores` in
        proportion to the segments' weights, none faster than one core (water-filling)."""
        out = {j: 1.0 for j in running if segment(j).kind == EXCLUSIVE}
        cpu = sorted((j for j in running if j not in out), key=lambda j: -segment(j).weight)
        cores, total = config.cores, sum(segment(j).weight for j in cpu)
        for j in cpu:  # heaviest first: those capped at one core leave the rest to the lighter ones
            share = cores * segment(j).weight / total if total > 0 else 0.0
            out[j] = min(1.0, share)
            cores, total = cores - out[j], total - segment(j).weight
        return out

    while True:
        for job in sched.start_due(now):
            traces[job.id].start = now
            timeline.append((now, "start", job.id))
            enter(job.id)
        skipped = False
        for job_id, kind in sched.grants(now):
            if kind == "skip":
                traces[job_id].outcome = "skipped for time"
                running.discard(job_id)
                sched.end(job_id, now, "skipped for time")
                skipped = True
                continue
            running.add(job_id)
            if kind == EXCLUSIVE:
                traces[job_id].timed = (now, now + remaining[job_id])
            traces[job_id].turns.append([kind, now, None])
            timeline.append((now, kind, job_id))
        for job_id, outcome in sched.ended.items():
            if traces[job_id].outcome is None and job_id not in sched.alive:
                traces[job_id].outcome = outcome
        if sched.done():
            break
        if skipped:  # the next exclusive turn may go to another job now
            continue
        wake = sched.wake_at()
        if wake is not None and wake > now:
            heapq.heappush(wakes, wake)
        rates = speeds()
        finish = min((remaining[j] / rates[j] + now for j in running if rates[j] > 0), default=None)
        candidates = [t for t in (finish, wakes[0] if wakes else None) if t is not None]
        if not candidates:
            raise RuntimeError("the window's schedule is stuck: no job can move")  # a scheduler bug
        later = min(candidates)
        while wakes and wakes[0] <= later:
            heapq.heappop(wakes)
        used = 0.0
        for j in list(running):
            done = (later - now) * rates[j]
            if segment(j).kind != EXCLUSIVE:
                used += rates[j]
            remaining[j] -= done
        cpu_done += used * (later - now)
        arb = sched.arbiter
        state = EXCLUSIVE if arb.exclusive is not None else SHARED if arb.shared or arb.exiting else "idle"
        busy.append((now, later, used, state))
        now = later
        for j in sorted(running, key=lambda j: remaining[j]):
            if remaining[j] <= 1e-9:
                running.discard(j)
                if segment(j).kind != "cpu":
                    sched.release(j, now)
                    traces[j].turns[-1][2] = now
                enter(j)
    exclusive = sum(end - begin for _, begin, end in sched.arbiter.timed if end is not None)
    end = max((t.end for t in traces.values() if t.end is not None), default=start)
    return Simulation(traces, end, exclusive, sched.arbiter.shared_periods, cpu_done, timeline, busy)
