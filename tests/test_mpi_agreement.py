"""Every rank reaches the same verdict: ranks given different inputs, a failure in any phase of
the engine on any rank, an output that is the input, a failed write, a refused work estimate.

Runs use ``mpirun -n 2`` and ``-n 3`` with a timeout (a hang fails the test). Faults are injected
through the engine's test hook ``DIPHA_FAULT_INJECT=<phase>:<rank>[,...]`` (each entry fires
once; see extern/dipha/include/dipha/mpi_layer.hpp), which makes the named phase run out of
memory on that rank.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import run_dipha_batch, run_mpi

ADVICE = "every rank must pass the same distance matrix, max_dim, threshold and options"


def _results(proc) -> dict:
    """{rank: payload} from the ``RESULT <json>`` lines the scripts print."""
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            out[r["rank"]] = r["out"]
    return out


def _ranks(ranks) -> str:
    return ("rank " if len(ranks) == 1 else "ranks ") + ", ".join(map(str, ranks))


def _script(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "script.py"
    p.write_text(textwrap.dedent(text))
    return p


# ------------------------------------------------------------------------------------------
# Different inputs on different ranks

DIFFERENT_INPUTS = """
import json, sys
import numpy as np
import scipy.sparse as sp
from mpi4py import MPI
from topodnn import _core

comm = MPI.COMM_WORLD
r, P = comm.rank, comm.size
last = r == P - 1
data = sys.argv[1]
rng = np.random.default_rng(3)
X = rng.normal(size=(40, 3))
D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))

def rips(A, md=2, thr=np.inf, **kw):
    return _core._rips_persistence(np.ascontiguousarray(A), None, None, None, len(A), md, thr, comm, False, **kw)

def csr(A):
    S = sp.csr_matrix(A)
    return _core._rips_persistence(np.zeros((0, 0)), S.indptr.astype(np.int64), S.indices.astype(np.int64),
                                   S.data, A.shape[0], 2, np.inf, comm, False)

def changed(A):
    B = A.copy(); B[5, 3] = B[3, 5] = A[5, 3] * 1.001
    return B

sphere = data + "/sphere_3_32.complex"
raw = bytearray(open(sphere, "rb").read())
raw[-8:] = np.array([0.123], "<f8").tobytes()  # same size, one distance changed
other = sys.argv[2] + "/other_%d.complex" % r
open(other, "wb").write(bytes(raw))

cases = {
    "same": lambda: rips(D),
    "matrix": lambda: rips(changed(D) if last else D),
    "n": lambda: rips(D[:39, :39] if last else D),
    "threshold": lambda: rips(D, thr=0.5 if last else np.inf),
    "max_dim": lambda: rips(D, md=1 if last else 2),
    "csr": lambda: csr(D) if last else rips(D),
    "float32": lambda: rips(D.astype(np.float32) if last else D),
    "upper_dim": lambda: _core._dipha_diagram_from_matrix(D, None, None, None, 40, 0 if last else 2, comm),
    "work": lambda: rips(D, max_work=10.0),
    "file": lambda: _core.compute_diagram(other if last else sphere, 2, False, True, comm),
    "file_upper_dim": lambda: _core.compute_diagram(sphere, 3 if last else 2, False, False, comm),
    "again": lambda: rips(D),
}
out = {}
for name, call in cases.items():
    try:
        res = call()
        out[name] = ["ok", [np.asarray(a).tolist() for a in res]]
    except ValueError as e:
        out[name] = ["ValueError", str(e)]
serial = _core._rips_persistence(D, None, None, None, 40, 2, np.inf, None, False)
out["serial"] = ["ok", [np.asarray(a).tolist() for a in serial]]
print("RESULT " + json.dumps({"rank": r, "out": out}), flush=True)
"""


@pytest.mark.parametrize("nprocs", [2, 3])
def test_different_inputs_raise_on_every_rank(tmp_path, nprocs, dipha_test_data):
    script = _script(tmp_path, DIFFERENT_INPUTS)
    proc = run_mpi(nprocs, [sys.executable, script, dipha_test_data, tmp_path], timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = _results(proc)
    assert sorted(res) == list(range(nprocs)), proc.stdout + proc.stderr
    others, last = _ranks(range(nprocs - 1)), f"rank {nprocs - 1}"
    expected = {
        "matrix": "distance matrix hash ",
        "n": f"n 40 on {others} but 39 on {last}",
        "threshold": f"threshold inf on {others} but 0.5 on {last}",
        "max_dim": f"max_dim 2 on {others} but 1 on {last}",
        "csr": f"layout dense float64 on {others} but CSR on {last}",
        "float32": f"layout dense float64 on {others} but dense float32 on {last}",
        "upper_dim": f"upper_dim 2 on {others} but 0 on {last}",
        "file": "input file hash ",
        "file_upper_dim": f"upper_dim 2 on {others} but 3 on {last}",
    }
    for case, fragment in expected.items():
        verdicts = [res[r][case] for r in range(nprocs)]
        assert all(v[0] == "ValueError" for v in verdicts), (case, verdicts)
        assert len({v[1] for v in verdicts}) == 1, (case, verdicts)  # the same message everywhere
        msg = verdicts[0][1]
        assert "ranks were given different inputs: " in msg and fragment in msg, (case, msg)
        assert f"on {last}" in msg, (case, msg)
    for case in ("n", "threshold", "max_dim", "csr", "float32", "matrix"):
        assert res[0][case][1].startswith("rips: ") and res[0][case][1].endswith(ADVICE)
    # only n differs in "n" (the stored entries follow from it; no hash line when a field differs)
    assert "distance matrix hash" not in res[0]["n"][1]
    # a refused work estimate: the same message on every rank, none "reported by" a rank
    work = {res[r]["work"][1] for r in range(nprocs)}
    assert len(work) == 1 and "above the limit of 10" in work.pop()
    # the same input still gives the serial result, also after all the failed calls
    for r in range(nprocs):
        assert res[r]["same"] == res[r]["serial"] == res[r]["again"], r
        assert res[r]["same"] == res[0]["same"]


# ------------------------------------------------------------------------------------------
# A failure in every phase of the Vietoris-Rips engine, on the first and on the last rank

FAULTS = """
import json, sys
import numpy as np
from mpi4py import MPI
from topodnn import _core

comm = MPI.COMM_WORLD
rng = np.random.default_rng(7)
X = rng.normal(size=(60, 3))
D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
calls = int(sys.argv[1])
out = []
for k in range(calls + 1):
    try:
        res = _core._rips_persistence(D, None, None, None, 60, 2, np.inf, comm, False)
        out.append(["ok", [a.tolist() for a in res]])
    except (ValueError, MemoryError) as e:
        out.append([type(e).__name__, str(e)])
print("RESULT " + json.dumps({"rank": comm.rank, "out": out}), flush=True)
"""


def _rips_phases(target: int):
    """(phase, what) in the order a call runs them, on rank `target` (max_dim 2)."""
    phases = [("rips.fingerprint", "fingerprinting the input"), ("rips.setup", "setting up the complex"),
              ("rips.h0", "computing H0")]
    def local_and_receive(name, what):  # local work, then a collective's receive buffer
        return [(name, what), (name + ".recv", "allocating the receive buffer for " + what)]

    for q in (1, 2):
        phases.append((f"rips.columns.{q}", f"listing the columns of dimension {q}"))
        phases += local_and_receive(f"rips.split.{q}", f"splitting the columns of dimension {q}")
        phases += local_and_receive(f"rips.exchange.{q}", f"routing the columns of dimension {q} to their ranks")
        # round 0: own columns; rounds 1..target: the receive buffer of the predecessor's columns
        phases += [(f"rips.reduce.{q}.{t}", f"reducing dimension {q}") for t in range(target + 1)]
        if q == 1:
            phases += local_and_receive("rips.clearing.1", "gathering the pivots of dimension 1 for clearing")
    phases += [("rips.gather.recv", "allocating the receive buffer for gathering the persistence pairs"),
               ("rips.gather", "gathering the persistence pairs")]
    return phases


@pytest.mark.parametrize("nprocs, which", [(2, "first"), (2, "last"), (3, "first"), (3, "last")])
def test_fault_in_every_rips_phase(tmp_path, nprocs, which):
    target = 0 if which == "first" else nprocs - 1
    phases = _rips_phases(target)
    spec = ",".join(f"{name}:{target}" for name, _ in phases)
    script = _script(tmp_path, FAULTS)
    proc = run_mpi(nprocs, ["-x", f"DIPHA_FAULT_INJECT={spec}", sys.executable, script, len(phases)], timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = _results(proc)
    assert sorted(res) == list(range(nprocs)), proc.stdout + proc.stderr
    for k, (name, what) in enumerate(phases):
        verdicts = [res[r][k] for r in range(nprocs)]
        assert len({json.dumps(v) for v in verdicts}) == 1, (name, verdicts)  # same error everywhere
        kind, msg = verdicts[0]
        assert kind == "MemoryError", (name, msg)
        assert msg.startswith(f"rips: out of memory while {what} ("), (name, msg)
        assert msg.endswith(f"(reported by rank {target} of {nprocs})"), (name, msg)
    # every fault fired once: the next call computes, and gives the serial result (computed here,
    # without faults; a serial call in the script would be rank 0 of its own communicator)
    import mpi4py.MPI  # noqa: F401

    from topodnn import _core

    X = np.random.default_rng(7).normal(size=(60, 3))
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    ref = ["ok", [a.tolist() for a in _core._rips_persistence(D, None, None, None, 60, 2, np.inf, None, False)]]
    for r in range(nprocs):
        assert json.dumps(res[r][len(phases)]) == json.dumps(ref), r


# ------------------------------------------------------------------------------------------
# The dipha executable with a fault in each phase of the general path and of the Rips path

GENERAL = ["--general", "--upper_dim", "2"]
FAST = ["--upper_dim", "2"]


@pytest.mark.parametrize(
    "args, fault, what",
    [
        (GENERAL, "dipha.check:1", "checking the file names"),
        (GENERAL, "dipha.read:1", "reading "),
        (GENERAL, "dipha.complex:0", "building the complex of "),
        (GENERAL, "dipha.filtration:1", "sorting the filtration"),
        (GENERAL, "dipha.reduce.2.0:0", "reducing dimension 2"),
        (GENERAL, "dipha.reduce.2.0:1", "reducing dimension 2"),
        (GENERAL, "dipha.reduce.1.1:0", "reducing dimension 1"),  # rank 0's buffer for rank 1's columns
        (GENERAL, "dipha.gather:1", "gathering the persistence pairs"),
        (GENERAL, "dipha.gather.recv:0", "allocating the receive buffer for gathering the persistence pairs"),
        (GENERAL, "dipha.write:0", "writing the diagram"),
        (FAST, "dipha.complex:1", "loading "),
        (FAST, "rips.columns.1:1", "listing the columns of dimension 1"),
        (FAST, "rips.reduce.1.1:1", "reducing dimension 1"),
        (FAST, "rips.gather:0", "gathering the persistence pairs"),
    ],
)
def test_dipha_executable_fault(args, fault, what, bin_dir, dipha_test_data, tmp_path):
    out = tmp_path / "o.diagram"
    cmd = (f"'{bin_dir / 'dipha'}' {' '.join(args)} '{dipha_test_data / 'sphere_3_32.complex'}' '{out}'; "
           "echo \"RANK $OMPI_COMM_WORLD_RANK EXIT $?\"")
    proc = run_mpi(2, ["-x", f"DIPHA_FAULT_INJECT={fault}", "bash", "-c", cmd], timeout=60)
    exits = dict(line.split()[1:4:2] for line in proc.stdout.splitlines() if line.startswith("RANK "))
    assert sorted(exits) == ["0", "1"], proc.stdout + proc.stderr
    assert all(code == "1" for code in exits.values()), exits
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("dipha: error:")]
    assert len(lines) == 1, proc.stderr
    rank = fault.rsplit(":", 1)[1]
    assert f"out of memory while {what}" in lines[0] and f"(reported by rank {rank} of 2)" in lines[0], lines[0]
    assert not out.exists()
    assert os.listdir(tmp_path) == [], os.listdir(tmp_path)  # no temporary file left


# ------------------------------------------------------------------------------------------
# An output that is the input is refused; outputs are replaced atomically


@pytest.fixture
def inputs(tmp_path, dipha_test_data):
    """Writable copies of a distance matrix and an explicit complex, with links to them."""
    d = tmp_path / "in"
    d.mkdir()
    full = d / "full.complex"
    full.write_bytes((dipha_test_data / "sphere_3_32.complex").read_bytes())
    explicit = d / "explicit.complex"
    explicit.write_bytes((dipha_test_data / "primal_explicit.complex").read_bytes())
    (d / "sym.complex").symlink_to(full.name)
    os.link(full, d / "hard.complex")
    return d


def _assert_refused(proc, prog, input_path, before):
    assert proc.returncode != 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(f"{prog}: error:")]
    assert len(lines) == 1, proc.stderr
    assert "the output file is the input file" in lines[0], lines[0]
    assert input_path.read_bytes() == before


@pytest.mark.parametrize("out_name", ["full.complex", "./full.complex", "sym.complex", "hard.complex"])
def test_dipha_refuses_output_that_is_input(out_name, inputs, bin_dir):
    full = inputs / "full.complex"
    before = full.read_bytes()
    cmd = f"cd '{inputs}' && '{bin_dir / 'dipha'}' --upper_dim 2 full.complex {out_name}"
    _assert_refused(run_mpi(2, ["bash", "-c", cmd], timeout=60), "dipha", full, before)
    assert (inputs / "sym.complex").is_symlink()


def test_dualize_and_full_to_sparse_refuse_output_that_is_input(inputs, bin_dir):
    explicit, full = inputs / "explicit.complex", inputs / "full.complex"
    b_explicit, b_full = explicit.read_bytes(), full.read_bytes()
    _assert_refused(run_mpi(2, [bin_dir / "dualize", explicit, explicit], timeout=60), "dualize", explicit, b_explicit)
    _assert_refused(run_mpi(2, [bin_dir / "full_to_sparse_distance_matrix", "1", full, inputs / "hard.complex"],
                            timeout=60), "full_to_sparse_distance_matrix", full, b_full)


def test_bindings_refuse_output_that_is_input(inputs):
    import mpi4py.MPI  # noqa: F401

    from topodnn import _core

    explicit, full = inputs / "explicit.complex", inputs / "full.complex"
    b_explicit, b_full = explicit.read_bytes(), full.read_bytes()
    with pytest.raises(ValueError, match="the output file is the input file"):
        _core.dualize(str(explicit), str(explicit))
    with pytest.raises(ValueError, match="the output file is the input file"):
        _core.full_to_sparse(1.0, str(full), str(inputs / "sym.complex"))
    assert _core.run_dipha(["dipha", "--upper_dim", "2", str(full), str(inputs / "hard.complex")]) == 1
    assert explicit.read_bytes() == b_explicit and full.read_bytes() == b_full


def test_output_through_a_link_replaces_its_target(inputs, dipha_test_data):
    import mpi4py.MPI  # noqa: F401

    from topodnn import _core

    target = inputs / "old.diagram"
    target.write_bytes(b"previous")
    (inputs / "link.diagram").symlink_to(target.name)
    assert _core.run_dipha(["dipha", "--upper_dim", "3", str(inputs / "full.complex"), str(inputs / "link.diagram")]) == 0
    assert (inputs / "link.diagram").is_symlink()
    assert target.read_bytes() == (dipha_test_data / "sphere_3.diagram").read_bytes()


FAILED_WRITE = """
import resource, signal, sys
import mpi4py.MPI as MPI
from topodnn import _core

# after MPI's start-up (its shared memory is larger than the limit): files of at most 1 KiB
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))
rc = _core.run_dipha(["dipha", sys.argv[1], sys.argv[2]])
print("RESULT {\\"rank\\": %d, \\"out\\": %d}" % (MPI.COMM_WORLD.rank, rc), flush=True)
"""


def test_failed_write_keeps_previous_output(tmp_path, dipha_test_data):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "o.diagram"
    out.write_bytes(b"previous diagram")
    script = _script(tmp_path, FAILED_WRITE)
    # the diagram of noise_3_16 is 34 KB, more than the limit
    proc = run_mpi(2, [sys.executable, script, dipha_test_data / "noise_3_16.complex", out], timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _results(proc) == {0: 1, 1: 1}, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("dipha: error:")]
    assert len(lines) == 1 and str(out) in lines[0] and "write error" in lines[0], proc.stderr
    assert out.read_bytes() == b"previous diagram"
    assert os.listdir(out_dir) == ["o.diagram"]  # the temporary file is gone


# ------------------------------------------------------------------------------------------
# Work estimate


def _points(n, seed=0):
    X = np.random.default_rng(seed).normal(size=(n, 3))
    return np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))


def test_astronomical_work_is_refused_by_default():
    import mpi4py.MPI  # noqa: F401

    from topodnn import _core

    D = _points(30)
    with pytest.raises(ValueError) as exc:
        _core._rips_persistence(D, None, None, None, 30, 29, np.inf, None, False)
    msg = str(exc.value)
    assert msg.startswith("rips: the computation is estimated at about 7.01e+11 coface visits")
    assert "max_dim 29" in msg and "above the limit of 5e+11" in msg and "max_work" in msg


def test_work_limit_and_its_lifting():
    import mpi4py.MPI  # noqa: F401

    from topodnn import _core

    D = _points(14, seed=1)
    ref = _core._rips_persistence(D, None, None, None, 14, 3, np.inf, None, False)
    with pytest.raises(ValueError, match=r"above the limit of 1e\+03; .*raise the limit with max_work"):
        _core._rips_persistence(D, None, None, None, 14, 3, np.inf, None, False, max_work=1e3)
    for lifted in (np.inf, -1.0, 1e12):
        got = _core._rips_persistence(D, None, None, None, 14, 3, np.inf, None, False, max_work=lifted)
        assert all(np.array_equal(a, b) for a, b in zip(ref, got))
    with pytest.raises(ValueError, match="max_work must be a number"):
        _core._rips_persistence(D, None, None, None, 14, 3, np.inf, None, False, max_work=float("nan"))


def test_dipha_max_work_option(dipha_test_data, tmp_path):
    sphere = dipha_test_data / "sphere_3_32.complex"
    jobs = [
        ("refused", ["dipha", "--upper_dim", "3", "--max_work", "1000", sphere, tmp_path / "a.diagram"]),
        ("lifted", ["dipha", "--upper_dim", "3", "--max_work", "inf", sphere, tmp_path / "b.diagram"]),
        ("bad", ["dipha", "--upper_dim", "3", "--max_work", "lots", sphere, tmp_path / "c.diagram"]),
    ]
    res = run_dipha_batch(2, jobs, tmp_path / "batch")
    rc, text = res["refused"]
    lines = [ln for ln in text.splitlines() if ln.startswith("dipha: error:")]
    assert rc == 1 and len(lines) == 1 and "above the limit of 1e+03" in lines[0] and "--max_work" in lines[0], text
    assert not (tmp_path / "a.diagram").exists()
    assert res["lifted"][0] == 0, res["lifted"][1]
    assert (tmp_path / "b.diagram").read_bytes() == (dipha_test_data / "sphere_3.diagram").read_bytes()
    assert res["bad"][0] == 1 and "--max_work value 'lots'" in res["bad"][1]


def test_dipha_help_documents_max_work(bin_dir):
    proc = run_mpi(1, [bin_dir / "dipha", "--help"], timeout=30, check=True)
    assert "--max_work W" in proc.stdout
