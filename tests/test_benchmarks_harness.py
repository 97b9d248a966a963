"""The benchmark harness and the RESULTS.md generator, on synthetic records and diagrams.

No benchmark is run here (but for one slow check that a real run's file goes through the
generator): the agreement rule, the child runner's handling of results, crashes and time-outs,
the never-overwriting JSON writer, and the verdicts of the targets table from given numbers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import topodnn_pythonpath

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


harness = _load("harness")
report = _load("report")


# ----------------------------------------------------------------------------------------------
# Agreement


def _diagrams(rng: np.random.Generator, counts=(30, 20, 5)) -> list:
    out = []
    for q, k in enumerate(counts):
        b = rng.uniform(0.0, 0.3, size=k) if q else np.zeros(k)
        d = b + rng.uniform(0.01, 0.1, size=k)
        d[: max(1, k // 10)] = np.inf
        out.append(np.column_stack([b, d]))
    return out


def test_exact_rule_ignores_row_order_and_catches_one_ulp():
    rng = np.random.default_rng(0)
    ours = _diagrams(rng)
    shuffled = [d[rng.permutation(len(d))] for d in ours]
    assert harness.compare_diagrams(ours, shuffled, "exact")["agree"]
    off = [d.copy() for d in ours]
    i = int(np.argmax(np.isfinite(off[1][:, 1])))
    off[1][i, 1] = np.nextafter(off[1][i, 1], 1.0)
    res = harness.compare_diagrams(ours, off, "exact")
    assert not res["agree"] and res["detail"].startswith("H1: 1 of 20 pairs differ")
    fewer = [ours[0], ours[1][1:], ours[2]]
    res = harness.compare_diagrams(ours, fewer, "exact")
    assert not res["agree"] and res["detail"] == "H1: 20 vs 19 pairs"
    assert harness.compare_diagrams(ours, ours[:2], "exact")["detail"] == "3 vs 2 dimensions"


def test_float32_rule_accepts_a_float32_peer_and_nothing_else():
    rng = np.random.default_rng(1)
    ours = _diagrams(rng)
    # a pair that is empty once rounded to float32: ours reports it, a float32 engine cannot
    b = np.float64(np.float32(0.2))
    ours[1] = np.vstack([ours[1], [b, np.nextafter(b, 1.0)]])
    peer = [np.asarray(d, dtype=np.float32) for d in ours]
    peer[1] = peer[1][:-1]
    assert harness.compare_diagrams(ours, peer, "float32")["agree"]
    assert not harness.compare_diagrams(ours, peer, "exact")["agree"]
    # a value one float32 step away is a difference, not rounding
    bad = [p.copy() for p in peer]
    bad[2][-1, 0] = np.nextafter(bad[2][-1, 0], np.float32(1.0))
    res = harness.compare_diagrams(ours, bad, "float32")
    assert not res["agree"] and res["detail"].startswith("H2:")
    # an essential class that dies in the peer
    dead = [p.copy() for p in peer]
    dead[0][0, 1] = np.float32(0.5)
    assert not harness.compare_diagrams(ours, dead, "float32")["agree"]


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="unknown agreement rule"):
        harness.canonical(np.zeros((1, 2)), "close enough")


def test_digest_depends_on_content_not_order():
    rng = np.random.default_rng(2)
    ours = _diagrams(rng)
    shuffled = [d[::-1] for d in ours]
    assert harness.diagram_digest(ours) == harness.diagram_digest(shuffled)
    other = [ours[0], ours[1][1:], ours[2]]
    assert harness.diagram_digest(ours) != harness.diagram_digest(other)


def test_diagrams_round_trip_through_npz(tmp_path):
    rng = np.random.default_rng(3)
    ours = _diagrams(rng, counts=(4, 0, 2))
    harness.save_diagrams(str(tmp_path / "d.npz"), ours)
    back = harness.load_diagrams(str(tmp_path / "d.npz"))
    assert [b.shape for b in back] == [(4, 2), (0, 2), (2, 2)]
    assert harness.compare_diagrams(ours, back, "exact")["agree"]


# ----------------------------------------------------------------------------------------------
# Children


def _py(code: str) -> list:
    return [sys.executable, "-c", code]


def test_child_result_line_is_parsed_among_other_output():
    rec = harness.run_child(_py("print('noise'); import sys; print('warm', file=sys.stderr); "
                                "print('BENCH_RESULT {\"x\": 1.5}')"),
                            label="ok", timeout_s=60, echo_stderr=False)
    assert rec["ok"] and rec["result"] == {"x": 1.5}
    assert rec["returncode"] == 0 and rec["signal"] is None and not rec["timed_out"]
    assert rec["wall_s"] > 0 and rec["tree_max_rss_mib"] > 0 and len(rec["load_after"]) == 3


def test_child_killed_by_a_signal_is_recorded_with_its_name():
    rec = harness.run_child(_py("import os, signal, sys; print('about to crash', file=sys.stderr); "
                                "sys.stderr.flush(); os.kill(os.getpid(), signal.SIGSEGV)"),
                            label="crash", timeout_s=60, echo_stderr=False)
    assert not rec["ok"] and rec["signal"] == "SIGSEGV" and rec["returncode"] == -11
    assert rec["failure"].startswith("killed by signal 11 (SIGSEGV) after")
    assert "about to crash" in rec["failure"] and "about to crash" in rec["stderr_tail"]


def test_child_exit_status_missing_result_and_timeout():
    rec = harness.run_child(_py("import sys; sys.exit('bad input: the file is empty')"),
                            label="exit", timeout_s=60, echo_stderr=False)
    assert not rec["ok"] and rec["returncode"] == 1
    assert rec["failure"].startswith("exit status 1") and "the file is empty" in rec["failure"]
    rec = harness.run_child(_py("print('no result here')"), label="silent", timeout_s=60, echo_stderr=False)
    assert not rec["ok"] and "no BENCH_RESULT line" in rec["failure"]
    rec = harness.run_child(_py("import time; time.sleep(60)"), label="slow", timeout_s=0.5, echo_stderr=False)
    assert not rec["ok"] and rec["timed_out"] and rec["failure"].startswith("timed out after")
    assert rec["wall_s"] < 30


def test_child_with_a_parser_and_a_memory_limit():
    rec = harness.run_child(_py("print('Overall running time (s): 2.5')"), label="parsed", timeout_s=60,
                            echo_stderr=False, memory_limit_gib=4.0,
                            parse=lambda out: {"t": float(out.split(":")[1])})
    assert rec["ok"] and rec["result"] == {"t": 2.5} and rec["memory_limit_gib"] == 4.0
    rec = harness.run_child(_py("print('garbage')"), label="unparsable", timeout_s=60, echo_stderr=False,
                            parse=lambda out: {"t": float(out.split(":")[1])})
    assert not rec["ok"] and rec["failure"].startswith("could not read its output: IndexError")


def test_peaks_of_one_process():
    p = harness.mpi_peaks(None)
    assert p["ranks"] == 1 and p["peak_total_mib"] == p["peak_per_rank_mib"][0] > 0


def test_parent_refuses_to_start_a_child_once_it_holds_numpy(tmp_path):
    run = harness.BenchmarkRun("persistence", settings={}, argv=["x"], results_dir=tmp_path)
    try:
        assert "numpy" in sys.modules  # this test module imported it
        with pytest.raises(RuntimeError, match="has imported numpy"):
            run.child(_py("pass"), label="late", timeout_s=10)
    finally:
        run.cleanup()


def test_result_files_are_never_overwritten(tmp_path):
    when = harness.utc_now()
    first = harness.new_result_path("persistence", when, tmp_path)
    first.write_text("{}")
    second = harness.new_result_path("persistence", when, tmp_path)
    assert first != second and first.read_text() == "{}"
    assert report.FILE_RE.match(first.name) and report.FILE_RE.match(second.name)


def test_run_record_names_machine_commit_and_versions(tmp_path):
    run = harness.BenchmarkRun("graph", settings={"workloads": []}, argv=["bench_graph.py"], results_dir=tmp_path)
    path = run.write()
    run.cleanup()
    rec = json.loads(path.read_text())
    assert rec["benchmark"] == "graph" and rec["file"] == path.name
    assert rec["machine"]["logical_cores"] == os.cpu_count() and rec["machine"]["memory_gib"] > 0
    assert len(rec["load_before"]) == len(rec["load_after"]) == 3
    assert "numpy" in rec["versions"] and "commit" in rec["git"]


# ----------------------------------------------------------------------------------------------
# The generator, on synthetic records


def _run(label_meta: dict, result, ok=True, failure=None, signal=None, wall=1.0):
    rec = {"label": label_meta.get("engine_label", "x"), "ok": ok, "wall_s": wall, "meta": label_meta,
           "result": result, "load_before": [0.1, 0.1, 0.1], "load_after": [0.2, 0.1, 0.1],
           "returncode": 0 if ok else -11, "signal": signal}
    if not ok:
        rec["failure"] = failure
    return rec


def _record(benchmark: str, started: str, **fields) -> dict:
    base = {"schema": 1, "benchmark": benchmark, "command_line": f"python benchmarks/bench_{benchmark}.py",
            "started_utc": started, "finished_utc": started, "git": {"commit": "0123456789abcdef", "dirty": False},
            "machine": {"cpu_model": "Test CPU", "logical_cores": 2, "usable_cores": 2, "memory_gib": 24.0,
                        "os": "Linux", "python": "3.11"},
            "versions": {"topodnn": "0.1.0", "numpy": "2"}, "load_before": [0.1, 0.2, 0.3],
            "load_after": [0.4, 0.5, 0.6], "settings": {}, "runs": [], "comparisons": [], "notes": []}
    base.update(fields)
    return base


def _persistence(started: str, times: dict, peaks: dict, n_threads: bool = False) -> dict:
    """``times[label] = (first call alone, best)``; import 0.1 s for every engine."""
    runs = [_run({"kind": "describe", "workload": "A"},
                 {"workload": "A", "n": 1820, "threshold": 0.3, "max_dim": 2, "edges": 62859,
                  "pairs_of_units": 1655290, "source": "LeNet"})]
    comparisons = []
    for label, (first, best) in times.items():
        engine = "ours" if label.startswith("ours") else "giotto-ph"
        runs.append(_run({"kind": "engine", "workload": "A", "engine_label": label, "engine": engine},
                         {"import_s": 0.1, "first_call_s": first, "import_plus_first_call_s": 0.1 + first,
                          "best_s": best, "repeat_s": [best], "peak_total_mib": peaks[label],
                          "pairs": [1820, 700, 250]}))
        comparisons.append({"workload": "A", "reference": "ours-r1", "other": label, "agree": True,
                            "rule": "exact" if engine == "ours" else "float32", "detail": "same pairs"})
    notes = [] if n_threads else ["ours-t1/ours-t2 not run: topodnn.persistence has no n_threads parameter"]
    return _record("persistence", started, settings={"workloads": ["A"], "repeat": 3}, runs=runs,
                   comparisons=comparisons, notes=notes, ours_n_threads=n_threads)


STARTUP_CASES = {  # id: (group, title, short)
    "numpy": ("startup", "python: import numpy", "import numpy"),
    "persistence": ("startup", "python: first topodnn.persistence, 3x3 (package defaults)", "first persistence"),
    "dipha": ("startup", "dipha: 32-point full matrix, H0-H1 (package defaults)", "dipha"),
    "workload_persistence": ("workload", "topodnn.persistence: workload A", "topodnn.persistence"),
    "workload_dipha": ("workload", "dipha: workload A", "dipha"),
    "workload_ripser": ("workload", "ripser.py: workload A", "ripser.py"),
}


def _startup(started: str, walls: dict, works: dict = None, failed: dict = None) -> dict:
    """A bench_startup record: ``walls[case] = [wall time of each run]`` (None: a failed run,
    with ``failed[case]`` as its failure), ``works[case] = [work_s of each run]``."""
    works, failed = works or {}, failed or {}
    cases = [{"id": cid, "group": STARTUP_CASES[cid][0], "title": STARTUP_CASES[cid][1],
              "short": STARTUP_CASES[cid][2], "argv": ["python", "-c", cid], "command": f"python -c {cid}",
              "env_added": {}, "work": "the call" if cid in works else None} for cid in walls]
    runs = [_run({"kind": "input"}, {"path": "points32.complex", "n": 32}),
            _run({"kind": "describe", "workload": "A"},
                 {"workload": "A", "n": 1820, "threshold": 0.3, "max_dim": 2, "edges": 62859,
                  "pairs_of_units": 1655290, "source": "LeNet"}),
            _run({"kind": "probe", "config": "1 process, package defaults"}, {"btl": ["^ofi"], "ranks": 1}),
            _run({"kind": "probe", "config": "1 process, mpi4py imported first"}, {"btl": [""], "ranks": 1})]
    rounds = max(len(v) for v in walls.values())
    for r in range(rounds):  # round-robin, as bench_startup runs them
        for cid, values in walls.items():
            if r >= len(values):
                continue
            meta = {"kind": "case", "case": cid, "group": STARTUP_CASES[cid][0], "round": r + 1}
            if values[r] is None:
                runs.append(_run(meta, None, ok=False, failure=failed[cid], wall=0.5))
                continue
            result = {"work_s": works[cid][r], "pairs": [1820, 1548, 931]} if cid in works else {}
            runs.append(_run(meta, result, wall=values[r]))
    return _record("startup", started, settings={"repeat": rounds, "workload": "A", "target_case": "persistence"},
                   cases=cases, runs=runs, removed_from_environment={"OMPI_MCA_btl": "self,sm"})


def _write(folder: Path, name: str, record) -> None:
    (folder / name).write_text(json.dumps(record) if not isinstance(record, str) else record)


def _target(text: str, starts: str) -> list:
    rows = [ln for ln in text.splitlines() if ln.startswith(f"| {starts}")]
    assert len(rows) == 1, (starts, rows)
    return [c.strip() for c in rows[0].strip("|").split(" | ")]


@pytest.fixture
def results(tmp_path):
    old = _persistence("2026-01-01T00:00:00Z", {"ours-r1": (0.1, 0.1), "gph-t1": (1.0, 1.0)},
                       {"ours-r1": 10, "gph-t1": 20})
    new = _persistence("2026-02-01T00:00:00Z",
                       {"ours-r1": (0.5, 0.4), "gph-t1": (1.0, 1.0),    # best 0.4x, first call 0.55x
                        "ours-r2": (0.25, 0.2), "gph-t2": (1.0, 1.0)},  # 0.2x and 0.32x
                       {"ours-r1": 100, "gph-t1": 200, "ours-r2": 300, "gph-t2": 200})
    _write(tmp_path, "persistence_20260101T000000Z.json", old)
    _write(tmp_path, "persistence_20260201T000000Z.json", new)
    big = _record("big", "2026-02-02T00:00:00Z", settings={"nets": ["resnet18", "vgg16"], "max_dim": 1},
                  graphs={}, runs=[
                      _run({"kind": "engine", "net": "resnet18", "engine_label": "ours-r1"},
                           {"import_s": 0.1, "first_call_s": 50.0, "import_plus_first_call_s": 50.1,
                            "peak_total_mib": 4096, "pairs": [25000, 19000]}),
                      _run({"kind": "engine", "net": "resnet18", "engine_label": "gph-t1"},
                           {"import_s": 3.0, "first_call_s": 300.0, "import_plus_first_call_s": 303.0,
                            "peak_total_mib": 11264, "pairs": [25000, 19000]}),
                      _run({"kind": "engine", "net": "vgg16", "engine_label": "ours-r1"},
                           {"import_s": 0.1, "first_call_s": 300.0, "import_plus_first_call_s": 300.1,
                            "peak_total_mib": 6000, "pairs": [36000, 30000]}),
                      _run({"kind": "engine", "net": "vgg16", "engine_label": "gph-t1"}, None, ok=False,
                           signal="SIGSEGV", failure="killed by signal 11 (SIGSEGV) after 419.0 s", wall=419.0)])
    _write(tmp_path, "big_20260202T000000Z.json", big)
    _write(tmp_path, "startup_20260203T000000Z.json", _startup("2026-02-03T00:00:00Z", {"persistence": [0.09, 0.11, 0.3]}))
    _write(tmp_path, "applications.json", {"study": "not a benchmark"})
    _write(tmp_path, "graph_20260204T000000Z.json", "{ truncated")
    return tmp_path


def test_targets_are_judged_from_the_newest_run_and_say_where_we_lose(results):
    text = report.generate(results)
    src = "[persistence_20260201T000000Z.json](results/persistence_20260201T000000Z.json)"
    row = _target(text, "LeNet A, 1 worker: ours, 1 rank vs")
    assert row[3] == "**not met**" and row[4] == src  # first call 0.6 / 1.1 = 0.55x > 0.5
    assert "best of 3: 0.40×" in row[2] and "first call (import + call): 0.55×" in row[2]
    row = _target(text, "LeNet A, 2 workers: ours, 2 ranks vs")
    assert row[3] == "met" and "0.20×" in row[2] and "0.32×" in row[2]
    row = _target(text, "LeNet A, 1 worker: peak memory of ours, 1 rank")
    assert row[3] == "met" and row[2].startswith("100 MiB vs 200 MiB (0.50×)")
    row = _target(text, "LeNet A, 2 workers: peak memory of ours, 2 ranks")
    assert row[3] == "**not met**" and "(ours larger)" in row[2]
    row = _target(text, "LeNet A, 1 worker: ours, 1 thread vs")
    assert row[3] == "not run" and "no n_threads parameter" in row[2]
    row = _target(text, "LeNet B, 1 worker: ours, 1 rank vs")
    assert row[3] == "not run" and row[4] == "–"


def test_big_networks_startup_and_missing_benchmarks(results):
    text = report.generate(results)
    row = _target(text, "ResNet18 H0..H1: ours, 1 rank vs giotto-ph, 1 thread")
    assert row[3] == "met" and "0.17×" in row[2] and "4.00 GiB vs 11.00 GiB" in row[2]
    row = _target(text, "VGG16 H0..H1: ours, 1 rank")
    assert row[3] == "**not met**" and "SIGSEGV" in row[2]  # 300 s is not under 289 s
    row = _target(text, "Start-up")
    assert row[3] == "met" and row[2] == "0.110 s (median of 3 fresh processes; best 0.090 s)"  # 0.11 <= 0.15
    assert row[4] == "[startup_20260203T000000Z.json](results/startup_20260203T000000Z.json)"
    for bench in ("dipha", "graph", "demo"):
        assert f"`{report.COMMANDS[bench]}`" in text.split("## Not run yet")[1].split("## ")[0]
    assert "`graph_20260204T000000Z.json`: not readable JSON" in text
    assert "applications.json" not in text.split("## Summary")[1].split("The applications")[0]
    assert "**failed**: killed by signal 11 (SIGSEGV) after 419.0 s" in text


def test_every_row_of_every_table_names_its_file(results):
    lines = report.generate(results).splitlines()
    rows = [ln for i, ln in enumerate(lines) if ln.startswith("|") and not ln.startswith("|---")
            and not (i + 1 < len(lines) and lines[i + 1].startswith("|---"))]
    assert len(rows) > 20
    for row in rows:  # a row without a file is a target nobody has measured (yet)
        assert ".json" in row or row.endswith(("| not run | – |", "| not measured | – |")), row


def test_old_startup_file_is_a_problem_not_a_figure(tmp_path):
    # bench_startup.py's format before the harness (one startup.json, overwritten on each run)
    _write(tmp_path, "startup.json", {"cases": [{"case": "python: first topodnn.persistence, 3x3 (package "
                                                 "defaults)", "times_s": [0.1], "best_s": 0.1, "median_s": 0.1}]})
    text = report.generate(tmp_path)
    row = _target(text, "Start-up")
    assert row[3] == "not run" and "no bench_startup run" in row[2]
    assert "`startup.json`: not a benchmark run of the harness" in text.split("## Problems")[1]
    # a harness record without the target case is not read as one
    _write(tmp_path, "startup_20260101T000000Z.json", _startup("2026-01-01T00:00:00Z", {"numpy": [0.05]}))
    row = _target(report.generate(tmp_path), "Start-up")
    assert row[3] == "not run" and "with the case `persistence`" in row[2]


def test_startup_record_every_case_and_the_target():
    rec = _startup("2026-03-01T00:00:00Z",
                   {"numpy": [0.06, 0.05, 0.07], "persistence": [0.2, 0.4, 0.25],
                    "dipha": [0.15, None, 0.12],
                    "workload_persistence": [0.9, 0.8, 1.0], "workload_dipha": [0.7, 0.75, 0.72],
                    "workload_ripser": [2.0, 2.2, 2.1]},
                   works={"dipha": [0.01, None, 0.01], "workload_persistence": [0.5, 0.45, 0.6],
                          "workload_dipha": [0.46, 0.5, 0.47], "workload_ripser": [1.9, 2.0, 1.95]},
                   failed={"dipha": "exit status 1 after 0.5 s: dipha: error: cannot open the input"})
    rec["_file"], rec["_benchmark"] = "startup_20260301T000000Z.json", "startup"
    rows = report.startup_targets([rec])
    assert rows[0][3] == "**not met**" and rows[0][2] == "0.250 s (median of 3 fresh processes; best 0.200 s)"
    assert rows[1][0] == "Whole process on workload A (fresh process, start-up included)" and rows[1][3] == "recorded"
    assert rows[1][2] == ("median of 3: topodnn.persistence 0.900 s (work 0.500 s); dipha 0.720 s (work 0.470 s); "
                          "ripser.py 2.10 s (work 1.95 s)")
    text = report.render_startup(rec)
    raw = "[startup_20260301T000000Z.json](results/startup_20260301T000000Z.json)"
    assert f"| python: import numpy | 3 | 0.050 | 0.060 | – | – | – | 0.1–0.2 | {raw} |" in text
    assert f"| python: first topodnn.persistence, 3x3 (package defaults) | 3 | 0.200 | 0.250 |" in text
    # a failed run: counted, named, left out of best and median
    assert "| dipha: 32-point full matrix, H0-H1 (package defaults) | 2 of 3 | 0.120 | 0.135 | 0.010 | 0.010 | 0.125 |" in text
    assert "- dipha: 32-point full matrix, H0-H1 (package defaults): 1 of 3 runs **failed**: exit status 1" in text
    # outside the work: the median of whole - work over the runs (0.4, 0.35, 0.4), not median - median
    assert "| topodnn.persistence: workload A | 3 | 0.800 | 0.900 | 0.450 | 0.500 | 0.400 | 1,820 / 1,548 / 931 |" in text
    assert "#### Whole process: Workload A: 1,820 units" in text
    assert "1 process, package defaults: `^ofi`; 1 process, mpi4py imported first: unset (every transport)" in text
    assert "`OMPI_MCA_btl=self,sm`" in text


def test_startup_target_with_failed_runs_is_not_met():
    rec = _startup("2026-03-01T00:00:00Z", {"persistence": [0.05, None, 0.06]},
                   failed={"persistence": "killed by signal 11 (SIGSEGV) after 0.5 s"})
    rec["_file"], rec["_benchmark"] = "startup_20260301T000000Z.json", "startup"
    (row, whole) = report.startup_targets([rec])
    assert row[3] == "**not met** (runs failed)" and "1 of 3 runs failed: killed by signal 11" in row[2]
    assert whole[3] == "not run"
    rec = _startup("2026-03-01T00:00:00Z", {"persistence": [None]}, failed={"persistence": "exit status 1"})
    rec["_file"], rec["_benchmark"] = "startup_20260301T000000Z.json", "startup"
    row = report.startup_targets([rec])[0]
    assert row[3] == "**failed**" and row[2] == "all 1 runs failed: exit status 1"


def test_check_mode_catches_a_stale_results_md(results, tmp_path):
    out = tmp_path / "RESULTS.md"
    out.write_text("# edited by hand\n")
    assert report.main(["--results-dir", str(results), "--output", str(out), "--check"]) == 1
    assert report.main(["--results-dir", str(results), "--output", str(out)]) == 0
    assert report.main(["--results-dir", str(results), "--output", str(out), "--check"]) == 0


def test_committed_results_md_is_what_the_committed_files_give():
    assert report.generate(report.RESULTS_DIR) == report.RESULTS_MD.read_text(), (
        "benchmarks/RESULTS.md is stale: run python benchmarks/report.py")


@pytest.mark.slow
def test_a_real_tiny_run_goes_through_the_generator(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = topodnn_pythonpath(env)  # the topodnn under test, installed or not
    env["TOPODNN_BENCH_CACHE"] = str(tmp_path / "cache")
    proc = subprocess.run([sys.executable, str(BENCH / "bench_persistence.py"), "tiny", "--repeat", "1",
                           "--engines", "ours-r1,ours-r2,gph-t1", "--results-dir", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "cache" / "tiny_random_200_units.npy").is_file()
    files = list(tmp_path.glob("persistence_*.json"))
    assert len(files) == 1
    rec = json.loads(files[0].read_text())
    engines = {r["meta"]["engine_label"]: r for r in rec["runs"] if r["meta"].get("kind") == "engine"}
    assert set(engines) == {"ours-r1", "ours-r2", "gph-t1"} and all(r["ok"] for r in engines.values())
    assert engines["ours-r2"]["result"]["ranks"] == 2
    assert len(engines["ours-r2"]["result"]["peak_per_rank_mib"]) == 2
    assert {c["other"]: c["agree"] for c in rec["comparisons"]} == {"ours-r1": True, "ours-r2": True, "gph-t1": True}
    text = report.generate(tmp_path)
    assert "#### Workload tiny: 200 units" in text and files[0].name in text


@pytest.mark.slow
def test_a_real_startup_run_goes_through_the_generator(tmp_path, bin_dir):
    env = dict(os.environ)
    env["PYTHONPATH"] = topodnn_pythonpath(env)  # the topodnn under test, installed or not
    env["TOPODNN_BENCH_CACHE"] = str(tmp_path / "cache")
    env["TOPODNN_BIN_DIR"] = str(bin_dir)  # the dipha that goes with it
    proc = subprocess.run([sys.executable, str(BENCH / "bench_startup.py"), "--repeat", "1", "--workload", "tiny",
                           "--results-dir", str(tmp_path)], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = list(tmp_path.glob("startup_*.json"))
    assert len(files) == 1
    rec = json.loads(files[0].read_text())
    cases = {c["id"]: c for c in rec["cases"]}
    assert {"persistence", "mpi4py", "init_mpi", "dipha", "dipha_btl", "mpirun2_true", "mpirun2_dipha",
            "workload_ripser", "workload_persistence", "workload_dipha", "workload_mpirun2_dipha"} <= set(cases)
    runs = {r["meta"]["case"]: r for r in rec["runs"] if r["meta"].get("kind") == "case"}
    assert set(runs) == set(cases) and len(runs) == len([r for r in rec["runs"] if r["meta"].get("kind") == "case"])
    assert all(r["ok"] for r in runs.values()), {k: r.get("failure") for k, r in runs.items() if not r["ok"]}
    probes = [r for r in rec["runs"] if r["meta"].get("kind") == "probe"]
    assert len(probes) == 5 and all(p["ok"] for p in probes)
    assert [len(p["result"]["btl"]) for p in probes] == [1, 1, 1, 2, 2]
    for cid, c in cases.items():  # the work is part of the whole process, where there is one
        if c["work"] is not None:
            assert 0 < runs[cid]["result"]["work_s"] < runs[cid]["wall_s"], cid
    # both float64 engines, same workload: the same pairs per dimension (dipha from its own file)
    assert runs["workload_persistence"]["result"]["pairs"] == runs["workload_dipha"]["result"]["pairs"]
    assert runs["workload_dipha"]["result"]["sha256"] == runs["workload_mpirun2_dipha"]["result"]["sha256"]
    text = report.generate(tmp_path)
    assert "#### Whole process: Workload tiny: 200 units" in text and files[0].name in text
    assert "| python: first topodnn.persistence, 3x3 (package defaults) | 1 |" in text
