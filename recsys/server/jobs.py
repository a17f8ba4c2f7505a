"""Training jobs started over HTTP: a separate process per job, state in <home>/jobs/<id>.json.

Why a fresh interpreter (fork+exec, what multiprocessing calls the `spawn` start method) launched
with subprocess rather than a multiprocessing.Process: torch hangs in a plainly forked child, and
a multiprocessing child is tied to its parent's exit (joined or terminated at interpreter exit),
which would either stall the server's shutdown for a whole training run or kill the job. This
child runs in its own session, so the job outlives a server restart or Ctrl-C.

Cross-worker bookkeeping lives in the data home, so every uvicorn worker (and a restarted server)
sees the same jobs:
  jobs/<kind>.lock  flock'ed by the server, then inherited by the child (same open file
                    description), so it is held exactly as long as the child lives: a second
                    training of the same kind gets 409 from any worker, with no start-up race.
  jobs/<id>.json    the job record, replaced atomically by the child as it progresses.
  jobs/<id>.log     the child's output (tracebacks stay server-side).

Graceful shutdown: the server does not wait for or kill a running job; the job finishes and
publishes on its own. The registry's publish is atomic (write, fsync, rename, swap `current`), so
even a job killed with SIGKILL never leaves a half-published model.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import msgspec

from recsys.config import Settings
from recsys.errors import Conflict, NotFound, RecsysError, disk_full
from recsys.http.schemas import ErrorDetail, Job, JobProgress
from recsys.models.kinds import resolve
from recsys.models.registry import pid_alive
from recsys.server.settings_io import settings_from_json, settings_to_json
from recsys.system import usable_cores

logger = logging.getLogger("recsys.server.jobs")
JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")
ACTIVE = ("queued", "running")
KEEP_JOBS = 200  # finished job records kept in <home>/jobs
PROGRESS_EVERY_SECONDS = 0.5


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def write_job(folder: Path, job: Job) -> None:
    """Replace the job's record atomically; a full disk is DiskFull (507) and leaves no temp file."""
    tmp = folder / f".{job.id}.json.{os.getpid()}"
    try:
        tmp.write_bytes(msgspec.json.encode(job))
        os.replace(tmp, folder / f"{job.id}.json")  # readers see the old or the new, never half
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise disk_full(exc, tmp) or exc from exc


def read_job(folder: Path, job_id: str) -> Job:
    if not JOB_ID_RE.match(job_id):
        raise NotFound(f"no training job {job_id!r}")
    try:
        return msgspec.json.decode((folder / f"{job_id}.json").read_bytes(), type=Job)
    except FileNotFoundError:
        raise NotFound(f"no training job {job_id!r}") from None


def _settle(job: Job) -> Job:
    """A job still marked active whose process is gone died without a word (e.g. SIGKILL)."""
    if job.state in ACTIVE and job.pid is not None and not pid_alive(job.pid):
        return msgspec.structs.replace(
            job,
            state="failed",
            error=ErrorDetail(
                code="job_died", message="the training process exited without a result", status=500
            ),
        )
    return job


class JobManager:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.folder = settings.home / "jobs"
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # ---- reading -------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        return _settle(read_job(self.folder, job_id))

    def list(self, limit: int = 50) -> list[Job]:
        jobs = []
        for path in self.folder.glob("*.json") if self.folder.is_dir() else ():
            try:
                jobs.append(_settle(msgspec.json.decode(path.read_bytes(), type=Job)))
            except (OSError, msgspec.DecodeError):
                continue  # replaced or pruned while we listed
        jobs.sort(key=lambda j: j.created_at, reverse=True)
        return jobs[:limit]

    def state_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("queued", "running", "succeeded", "failed"), 0)
        for job in self.list(limit=KEEP_JOBS * 2):
            counts[job.state] += 1
        return counts

    # ---- starting ------------------------------------------------------------------------
    def start(self, kind: str, force: bool) -> Job:
        kind = resolve(kind).name  # InvalidInput (400) for a name the model table lacks
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / f"{kind}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                running = next(
                    (j for j in self.list() if j.kind == kind and j.state in ACTIVE), None
                )
                where = f" (job {running.id}, GET /training/{running.id})" if running else ""
                raise Conflict(
                    f"a {kind} training job is already running{where}; try again when it is done"
                ) from None
            job = Job(
                id=uuid.uuid4().hex, kind=kind, state="queued", force_retrain=force,
                created_at=_now(),
            )  # fmt: skip
            write_job(self.folder, job)
            try:
                child = self._spawn(job, fd)
            except OSError as exc:
                failed = msgspec.structs.replace(
                    job, state="failed", finished_at=_now(),
                    error=ErrorDetail(code="job_failed", message=f"could not start: {exc}", status=500),
                )  # fmt: skip
                write_job(self.folder, failed)
                raise
        finally:
            os.close(fd)  # if the child started, it keeps the lock (same open file description)
        self._children[job.id] = child
        threading.Thread(target=self._reap, args=(job.id, child), daemon=True).start()
        self._prune()
        return msgspec.structs.replace(job, pid=child.pid)

    def _lock_file(self, kind: str) -> int:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            return os.open(self.folder / f"{kind}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise disk_full(exc) or exc from exc

    def _spawn(self, job: Job, lock_fd: int) -> subprocess.Popen[bytes]:
        env = {**os.environ, "OMP_NUM_THREADS": str(training_threads(self.settings))}
        with open(self.folder / f"{job.id}.log", "wb") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "recsys.server.jobs", job.id, str(lock_fd)],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                pass_fds=(lock_fd,), start_new_session=True, env=env,
            )  # fmt: skip
        assert child.stdin is not None
        child.stdin.write(settings_to_json(self.settings).encode())
        child.stdin.close()
        return child

    def _reap(self, job_id: str, child: subprocess.Popen[bytes]) -> None:
        """Wait for the child (no zombie) and record a death it could not record itself."""
        code = child.wait()
        self._children.pop(job_id, None)
        try:
            job = read_job(self.folder, job_id)
        except NotFound:
            return
        if job.state in ACTIVE:
            write_job(
                self.folder,
                msgspec.structs.replace(
                    job, state="failed", finished_at=_now(),
                    error=ErrorDetail(
                        code="job_died", status=500,
                        message=f"the training process exited with code {code} without a result",
                    ),
                ),
            )  # fmt: skip

    def _prune(self) -> None:
        finished = [j for j in self.list(limit=10**9) if j.state not in ACTIVE]
        for job in finished[KEEP_JOBS:]:
            for suffix in (".json", ".log"):
                (self.folder / f"{job.id}{suffix}").unlink(missing_ok=True)

    def shutdown(self) -> None:
        for job_id, child in list(self._children.items()):
            if child.poll() is None:
                logger.warning(
                    "training job %s continues in process %d and publishes on its own",
                    job_id, child.pid,
                )  # fmt: skip


def training_threads(settings: Settings) -> int:
    """Threads for a job's parallel parts (implicit's ALS, faiss and torch all follow
    OMP_NUM_THREADS). Niceness alone did not keep serving fast: with the fit on both cores of
    this 2-core machine, p99 of the answers doubled through shared caches and memory bandwidth
    (measured 1.9-2.1x idle), with one thread 1.2-1.6x, and the fit under load took no longer."""
    if settings.server.training_threads > 0:
        return settings.server.training_threads
    users = os.environ.get("OMP_NUM_THREADS", "")  # the server's own environment says so
    if users.isdigit() and int(users) > 0:
        return int(users)
    return max(1, usable_cores() // 2)


# ---- the child process --------------------------------------------------------------------
def _trainer(kind: str) -> Callable[..., object]:
    from recsys import service

    return functools.partial(service.train, model=kind)


class _Terminated(BaseException):
    pass


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def run_job(job_id: str, lock_fd: int, settings: Settings) -> int:
    folder = settings.home / "jobs"
    fcntl.flock(lock_fd, fcntl.LOCK_EX)  # already ours (inherited); held until this process ends
    signal.signal(signal.SIGTERM, _on_sigterm)  # record "failed", not a silent death
    if settings.server.training_nice:
        os.nice(settings.server.training_nice)
    job = read_job(folder, job_id)
    print(
        f"{_now()} {job.kind} training job {job_id}: {os.environ.get('OMP_NUM_THREADS', 'all')} "
        f"threads, niceness {os.nice(0)}",
        flush=True,
    )  # the job's log, <home>/jobs/<id>.log
    started = time.monotonic()
    job = msgspec.structs.replace(job, state="running", started_at=_now(), pid=os.getpid())
    write_job(folder, job)
    last = 0.0

    def on_progress(done: int, total: int) -> None:
        nonlocal job, last
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY_SECONDS or done >= total:
            last = now
            job = msgspec.structs.replace(job, progress=JobProgress(done=done, total=total))
            write_job(folder, job)

    code = 1
    try:
        result = _trainer(job.kind)(settings, force=job.force_retrain, on_progress=on_progress)
        job = msgspec.structs.replace(
            job, state="succeeded", version=result.version, skipped=result.skipped,  # type: ignore[attr-defined]
            message=result.message or None,  # type: ignore[attr-defined]
        )  # fmt: skip
        code = 0
    except RecsysError as exc:
        error = ErrorDetail(code=exc.code, message=str(exc), status=exc.status)
        job = msgspec.structs.replace(job, state="failed", error=error)
    except _Terminated:
        error = ErrorDetail(code="job_terminated", message="training was terminated", status=500)
        job = msgspec.structs.replace(job, state="failed", error=error)
    except BaseException as exc:
        traceback.print_exc()
        full = disk_full(exc, settings.home)  # the environment, not a bug: the job says so
        error = ErrorDetail(
            code="internal_error", status=500,
            message=f"training failed unexpectedly; see jobs/{job_id}.log in the data home",
        ) if full is None else ErrorDetail(code=full.code, message=str(full), status=full.status)  # fmt: skip
        job = msgspec.structs.replace(job, state="failed", error=error)
    finally:
        job = msgspec.structs.replace(
            job, finished_at=_now(), seconds=round(time.monotonic() - started, 3)
        )
        # Unlock first: a client that sees the final state may start the next job at once.
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        write_job(folder, job)
    return code


if __name__ == "__main__":
    sys.exit(run_job(sys.argv[1], int(sys.argv[2]), settings_from_json(sys.stdin.read())))
