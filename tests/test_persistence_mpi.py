"""topodnn.persistence under mpirun: 1, 2 and 3 ranks give the serial result; bad input raises on
every rank without a hang."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import mpi_env, mpirun_path


SAME_AS_SERIAL = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from mpi4py import MPI
    import scipy.sparse as sp
    from topodnn import _core
    from topodnn.engine import persistence

    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(12345)
    cases = []
    for t in range(12):
        n = int(rng.integers(2, 45))
        if t % 3 == 0:
            A = rng.random((n, n)); D = A + A.T
        else:
            X = rng.normal(size=(n, 3)); D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
        np.fill_diagonal(D, 0)
        thr = np.inf if t % 2 else float(np.quantile(D, 0.6))
        cases.append((D, int(rng.integers(1, 4)), thr))
    # ties
    A = rng.integers(1, 4, size=(30, 30)).astype(float); D = np.triu(A, 1) + np.triu(A, 1).T
    cases.append((D, 2, np.inf))
    bad = 0
    for i, (D, md, thr) in enumerate(cases):
        ref = persistence(D, md, thr)
        got = persistence(D, md, thr, comm=comm)
        keep = (D <= thr) & ~np.eye(len(D), dtype=bool)
        got_sparse = persistence(sp.csr_matrix((D[keep], np.nonzero(keep)), shape=D.shape), md, comm=comm)
        # columns reduced window by window (a working coboundary of at most 24 entries), also
        # when they are forwarded between ranks
        got_windowed = _core._rips_persistence(np.ascontiguousarray(D), None, None, None, len(D), md, thr, comm,
                                               False, -1, 24 * 16)
        for a, b, c, w in zip(ref, got, got_sparse, got_windowed):
            if not (np.array_equal(a, b) and np.array_equal(a, c) and np.array_equal(a, w)):
                print(f"rank {comm.rank}: case {i} differs", flush=True); bad += 1; break
    data = sys.argv[1]
    if os.path.exists(os.path.join(data, "sphere_3_32.complex")):
        raw = open(os.path.join(data, "sphere_3_32.complex"), "rb").read()
        n = int(np.frombuffer(raw, "<i8", count=3)[2])
        D = np.frombuffer(raw, "<f8", count=n * n, offset=24).reshape(n, n).copy()
        dims, b, e = _core._dipha_diagram_from_matrix(D, None, None, None, n, 3, comm)
        rec = np.zeros(len(dims), dtype=[("d", "<i8"), ("b", "<f8"), ("e", "<f8")])
        rec["d"], rec["b"], rec["e"] = dims, b, e
        out = np.array([8067171840, 2, len(dims)], "<i8").tobytes() + rec.tobytes()
        if out != open(os.path.join(data, "sphere_3.diagram"), "rb").read():
            print(f"rank {comm.rank}: DIPHA diagram differs", flush=True); bad += 1
    bad = comm.allreduce(bad)
    if comm.rank == 0:
        print("MISMATCHES", bad, flush=True)
    sys.exit(1 if bad else 0)
    """
)

BAD_INPUT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from mpi4py import MPI
    from topodnn.engine import persistence

    comm = MPI.COMM_WORLD
    D = np.array([[0, 1.0], [2.0, 0]])  # not symmetric
    try:
        persistence(D, 1, comm=comm)
    except ValueError as e:
        print(f"rank {comm.rank} raised: {e}", flush=True)
    else:
        sys.exit(3)
    D = np.ones((3000, 3000)); np.fill_diagonal(D, 0)  # too large (checked in the engine)
    try:
        persistence(D, 4, comm=comm)
    except ValueError as e:
        print(f"rank {comm.rank} raised: {e}", flush=True)
    else:
        sys.exit(4)
    comm.Barrier()
    """
)


OUT_OF_MEMORY = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from mpi4py import MPI
    from topodnn.engine import persistence

    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(0)
    A = rng.random((70, 70)); D = A + A.T; np.fill_diagonal(D, 0)
    import scipy.sparse  # noqa: F401  (loaded before the limit: an import must not be what fails)
    persistence(np.zeros((3, 3)), max_dim=1, comm=comm)  # loads _core and starts MPI
    # 8 MiB of address space left: the estimate passes (the machine has the memory), the
    # reduction of dimension 4 does not fit, also when 2 ranks share it
    vm = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (vm + (8 << 20), resource.RLIM_INFINITY))
    try:
        persistence(D, max_dim=4, comm=comm)
    except MemoryError as e:
        print(f"rank {comm.rank} raised: {e}", flush=True)
    else:
        sys.exit(5)
    """
)


def run_mpi(tmp_path, script: str, nprocs: int, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "script.py"
    path.write_text(script)
    cmd = [mpirun_path(), "-n", str(nprocs), "--oversubscribe", sys.executable, str(path), *args]
    try:
        return subprocess.run(cmd, env=mpi_env(), capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after 120 s (hang?): {' '.join(cmd)}")


@pytest.mark.parametrize("nprocs", [1, 2, 3])
def test_ranks_give_serial_result(tmp_path, nprocs, dipha_test_data):
    r = run_mpi(tmp_path, SAME_AS_SERIAL, nprocs, str(dipha_test_data))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "MISMATCHES 0" in r.stdout


def test_bad_input_raises_on_every_rank(tmp_path):
    r = run_mpi(tmp_path, BAD_INPUT, 2)
    assert r.returncode == 0, r.stdout + r.stderr
    for rank in (0, 1):
        assert f"rank {rank} raised: the distance matrix is not symmetric" in r.stdout
        assert f"rank {rank} raised: rips: the complex is too large for memory" in r.stdout


@pytest.mark.parametrize("nprocs", [1, 2])
def test_out_of_memory_raises_memory_error_on_every_rank(tmp_path, nprocs):
    r = run_mpi(tmp_path, OUT_OF_MEMORY, nprocs)
    assert r.returncode == 0, r.stdout + r.stderr
    for rank in range(nprocs):
        assert f"rank {rank} raised: rips: out of memory while" in r.stdout, r.stdout + r.stderr
    if nprocs > 1:  # the same message everywhere
        lines = [line.split("raised: ", 1)[1] for line in r.stdout.splitlines() if "raised: " in line]
        assert len(set(lines)) == 1, lines
