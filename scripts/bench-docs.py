#!/usr/bin/env python3
"""Rewrites the benchmark figures in the docs from one run's results.json.

    python3 scripts/bench-docs.py RESULTS.json FILE.md... [--via WHAT] [--commit DESC]

Every figure the docs give for the benchmark lies between two markers:

    <!-- bench:begin NAME -->
    ...generated; edits here are lost...
    <!-- bench:end -->

and this script replaces what lies between them with the region NAME drawn
from RESULTS.json (the bench's own output, format stockpipe-bench-1).  Text
outside the markers is left as it is.  Every region says where its figures
come from: the date, the commit (the bench binary's `git describe`, from the
JSON, unless --commit names another), the machine and its load average, and
the command (--via names what ran it, e.g. "make bench-docs").

Regions:
  stamp      where the figures come from (one paragraph)
  summary    one row per transport: its 1x1 cell (direct: 1 process), with
             the ratio to mq, and direct with 4 processes by strategy
  shop       the original shop's algorithm by catalogue size (one sentence)
  results    every closed-loop cell, with its latency at half load
  knees      the sweep's knees (one sentence)
  raw        the raw baselines
  targets    the targets and whether they were met
  once       what exactly-once costs: the /unguarded twins

Exit status: 0 written; 1 bad results (unreadable, another format); 2 usage
or a bad marker (named with its file and line).  Nothing is written unless
every file's markers are sound.
"""

import argparse
import json
import re
import sys

BEGIN = re.compile(r"^<!-- bench:begin ([a-z-]+) -->\s*$")
END = re.compile(r"^<!-- bench:end -->\s*$")


class Bad(Exception):
    """A mistake in the input, with the exit status it calls for."""

    def __init__(self, msg, code):
        super().__init__(msg)
        self.code = code


# ---- numbers as the docs write them ----


def rate(v):
    """Orders per second: 3 significant figures, k or M."""
    if v is None:
        return "—"
    for div, unit in ((1e6, " M"), (1e3, " k")):
        if v >= div:
            x = v / div
            if x >= 100:
                return f"{x:,.0f}{unit}"
            return f"{x:.2f}{unit}" if x < 10 else f"{x:.1f}{unit}"
    return f"{v:.0f}"


def span(r):
    """Median (min–max) of a row."""
    return f"{rate(r['ops_median'])} ({rate(r['ops_min'])}–{rate(r['ops_max'])})"


def cpu(v):
    if v is None:
        return "—"
    return f"{v:,.0f}" if v >= 100 else f"{v:.2g}" if v < 1 else f"{v:.3g}"


def us(v):
    if v is None:
        return "—"
    if v >= 10000:
        return f"{v / 1000:,.0f} ms"
    return f"{v / 1000:.1f} ms" if v >= 1000 else f"{v:.0f} µs"


def ratio(a, b):
    return f"{a / b:.2f}×" if a and b else "—"


# ---- the rows ----


def fast_rows(d):
    """Closed-loop pipeline and scaling rows, each label once, in run order."""
    seen, out = set(), []
    for r in d["rows"]:
        if r["kind"] in ("pipeline", "scaling") and r["mode"] == "fast" and not r.get("copy"):
            if r["label"] not in seen:
                seen.add(r["label"])
                out.append(r)
    return out


def half_load(d, label):
    """The open-loop row of a cell nearest 50 % of its closed-loop median."""
    best = None
    for r in d["rows"]:
        if r["label"] == label and r["mode"] == "rate" and r["peak_pct"] is not None:
            if best is None or abs(r["peak_pct"] - 50) < abs(best["peak_pct"] - 50):
                best = r
    return best


def main_cell(d, transport):
    """A transport's 1x1 cas cell (direct: 1 process), uniform, guarded."""
    for r in fast_rows(d):
        if (r["transport"] == transport and r["sync"] == "cas" and r["producers"] == 1
                and r["workers"] in (0, 1) and not r["zipf_s"]
                and "/unguarded" not in r["label"]):
            return r
    return None


def transports(d):
    out = []
    for r in fast_rows(d):
        if r["transport"] not in out:
            out.append(r["transport"])
    return out


def flagged(r):
    f = r["flags"].split()
    return ", ".join(f"`{x}`" for x in f) if f else ""


def audit(r):
    return "ok" if r["audit"] == "pass" else "**FAILED**" if r["audit"] == "fail" else "n/a"


# ---- the regions ----


def r_stamp(d, ctx):
    m = d["machine"]
    load = m.get("loadavg")
    end = m.get("loadavg_end")
    lo = ("load average " + " / ".join(f"{x:.2f}" for x in load) + " (1, 5, 15 min) at the start"
          if load else "load average unknown")
    if end:
        lo += ", " + " / ".join(f"{x:.2f}" for x in end) + " at the end"
    cells = fast_rows(d)
    failed = d["audit"]["failed"]
    via = f"`{ctx['via']}` ran `bin/{d['command']}`" if ctx["via"] else f"`bin/{d['command']}`"
    s = d["settings"]
    return [
        f"Measured on {m['date'].replace('T', ' ').replace('Z', ' UTC')} at commit "
        f"`{ctx['commit']}`: {via} ({s['repeats']} × {s['run_s']:g} s repeats after "
        f"{s['warmup_s']:g} s of warm-up, open-loop points of {s['rate_s']:g} s). Machine: "
        f"{m['cpu']}, {m['cores']} cores, {m['kernel']}; libzmq {m['libzmq']}, czmq "
        f"{m['czmq']}; `msg_max` {m['mq_msg_max']}, `msgsize_max` {m['mq_msgsize_max']}. "
        f"{lo[0].upper() + lo[1:]}: {len(d['rows'])} rows ({len(cells)} closed-loop cells), "
        f"{'every one audited' if failed == 0 else f'{failed} failed their audit'}.",
        "",
        f"The machine is shared: with a load average of {load[0]:.2f} on {m['cores']} cores "
        "the cells got a fraction of the CPU, so the absolute figures are lower and noisier "
        "than on an idle machine. Compare the ratios between cells of this run (the `eff`, "
        "`÷ mq` and target columns), not these figures with another machine's."
        if load and load[0] > 0.5 * m["cores"] else
        "Absolute figures move with the machine and its load; compare the ratios between "
        "cells of one run, not figures of different runs.",
    ]


def r_summary(d, ctx):
    batch = next((r["batch"] for r in fast_rows(d) if r["batch"] > 1), None)
    out = [
        f"| transport, 1 producer × 1 worker{f', batches of {batch}' if batch else ''} "
        "| orders/s, median (min–max) | ÷ `mq` | CPU s per million orders "
        "| p50 / p99 at 50 % load | audit |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    mq = main_cell(d, "mq")
    for t in transports(d):
        r = main_cell(d, t)
        if r is None:
            continue
        h = half_load(d, r["label"])
        lat = f"{us(h['latency_us']['p50'])} / {us(h['latency_us']['p99'])}" if h else "—"
        name = f"`{t}`" + (" (1 process, no transport)" if t == "direct" else "")
        out.append(f"| {name} | {span(r)} | {ratio(r['ops_median'], mq and mq['ops_median'])} "
                   f"| {cpu(r['cpu_s_per_m']['total'])} | {lat} | {audit(r)} |")
    four = [r for r in fast_rows(d) if r["transport"] == "direct" and r["producers"] == 4]
    for r in four:
        out.append(f"| `direct` {r['sync']}, 4 processes | {span(r)} "
                   f"| {ratio(r['ops_median'], mq and mq['ops_median'])} "
                   f"| {cpu(r['cpu_s_per_m']['total'])} | — | {audit(r)} |")
    return out


def r_shop(d, ctx):
    shop = sorted((r for r in d["rows"] if r["kind"] == "shop"), key=lambda r: (r["procs"], r["products"]))
    if not shop:
        return ["The original shop's algorithm was not measured in this run."]
    parts = [f"{rate(r['ops_median'])} orders/s at {r['products']:,} products" for r in shop]
    procs = sorted({r["procs"] for r in shop})
    return [
        "The original shop's algorithm (one semaphore, the whole table copied out and back for "
        f"every order; {', '.join(map(str, procs))} processes) manages " + ", ".join(parts) + "."
    ]


def r_results(d, ctx):
    out = [
        "| cell | orders/s, median (min–max) | eff | CPU s per M orders | p50 / p99 at 50 % load "
        "| audit | flags |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in fast_rows(d):
        h = half_load(d, r["label"])
        lat = (f"{us(h['latency_us']['p50'])} / {us(h['latency_us']['p99'])} "
               f"(at {rate(h['offered'])}/s)") if h else "—"
        eff = f"{r['efficiency']:.2g}" if r["efficiency"] else "—"
        out.append(f"| `{r['label']}` | {span(r)} | {eff} | {cpu(r['cpu_s_per_m']['total'])} "
                   f"| {lat} | {audit(r)} | {flagged(r)} |")
    return out


def r_knees(d, ctx):
    target = d["settings"]["p99_target_us"]
    sweeps = []
    for r in d["rows"]:
        if r["kind"] == "sweep" and r["transport"] not in sweeps:
            sweeps.append(r["transport"])
    if not sweeps:
        return ["No load sweep in this run."]
    parts = []
    for t in sweeps:
        knees = [r for r in d["rows"] if r["kind"] == "sweep" and r["transport"] == t
                 and "knee" in r["flags"].split()]
        if knees:
            k = max(knees, key=lambda r: r["offered"])
            parts.append(f"**{t}** {rate(k['offered'])} orders/s ({k['peak_pct']:.0f} % of its "
                         f"closed-loop median, p99 {us(k['latency_us']['p99'])})")
        else:
            parts.append(f"**{t}** none (no point of its sweep kept p99 under the target with "
                         "the rate reached)")
    return [f"Knees (the highest offered rate with p99 ≤ {us(target)} and the rate reached): "
            + "; ".join(parts) + "."]


def r_raw(d, ctx):
    out = ["| baseline | orders/s, median (min–max) | CPU s per M orders | audit |",
           "| --- | --- | --- | --- |"]
    for r in d["rows"]:
        if r["kind"] in ("raw", "shop"):
            out.append(f"| `{r['label']}` | {span(r)} | {cpu(r['cpu_s_per_m']['total'])} "
                       f"| {audit(r)} |")
    return out


def r_targets(d, ctx):
    if not d["targets"]:
        return ["No targets in this run (a sliced run judges none)."]
    out = ["| target | this run | | measured |", "| --- | --- | --- | --- |"]
    for t in d["targets"]:
        verdict = {"yes": "met", "no": "**missed**"}.get(t["met"], "not measured")
        value = f"{t['value']:.2f}×" if t["value"] is not None else "—"
        out.append(f"| {t['name']} | {value} | {verdict} | {t['detail']} |")
    return out


def r_once(d, ctx):
    rows = {r["label"]: r for r in fast_rows(d)}
    out = ["| cell | with dedup + journal | without (--no-dedup) | ratio (target ≥ 0.8×) "
           "| workers' CPU s/M, with / without |",
           "| --- | --- | --- | --- | --- |"]
    n = 0
    for label, u in rows.items():
        if not label.endswith("/unguarded"):
            continue
        g = rows.get(label[: -len("/unguarded")])
        if g is None:
            continue
        n += 1
        out.append(f"| `{g['label']}` | {span(g)} | {span(u)} "
                   f"| **{ratio(g['ops_median'], u['ops_median'])}** "
                   f"| {cpu(g['cpu_s_per_m']['workers'])} / {cpu(u['cpu_s_per_m']['workers'])} |")
    return out if n else ["No /unguarded twins in this run."]


def mib(v):
    return "—" if v is None else f"{v:.1f}"


def r_memory(d, ctx):
    out = ["| cell | broker resident MiB (own) | workers resident MiB (own) | table MiB "
           "| bytes per product | orders per CPU-second |",
           "| --- | --- | --- | --- | --- | --- |"]
    n = 0
    for r in fast_rows(d):
        m = r.get("memory")
        if not m or m["table_mib"] is None or r["label"].endswith("/unguarded"):
            continue
        n += 1
        core = rate(1e6 / r["cpu_s_per_m"]["total"]) if r["cpu_s_per_m"]["total"] else "—"
        threads = "— (threads of the bench)"
        broker = (f"{mib(m['rss_broker_mib'])} ({mib(m['anon_broker_mib'])})"
                  if m["rss_broker_mib"] is not None else threads)
        if r["workers"] == 0:
            workers = "— (no workers)"
        elif m["rss_workers_mib"] is None:
            workers = threads
        else:
            workers = f"{mib(m['rss_workers_mib'])} ({mib(m['anon_workers_mib'])})"
        out.append(f"| `{r['label']}` | {broker} | {workers} "
                   f"| {mib(m['table_mib'])} | {m['bytes_per_product']:,.0f} | {core} |")
    return out if n else ["No memory figures in this run."]


REGIONS = {
    "stamp": r_stamp,
    "summary": r_summary,
    "shop": r_shop,
    "results": r_results,
    "knees": r_knees,
    "raw": r_raw,
    "targets": r_targets,
    "once": r_once,
    "memory": r_memory,
}


def rewrite(path, text, d, ctx):
    """The file's text with every region regenerated."""
    out, name, start = [], None, 0
    for no, line in enumerate(text.split("\n"), 1):
        b, e = BEGIN.match(line), END.match(line)
        if name is None:
            out.append(line)
            if b:
                name, start = b.group(1), no
                if name not in REGIONS:
                    raise Bad(f"{path}:{no}: unknown region '{name}' (known: "
                              f"{', '.join(REGIONS)})", 2)
            elif e:
                raise Bad(f"{path}:{no}: bench:end without a bench:begin", 2)
            elif line.lstrip().startswith("<!-- bench:"):
                raise Bad(f"{path}:{no}: a marker must be a line of its own, exactly "
                          "'<!-- bench:begin NAME -->' or '<!-- bench:end -->'", 2)
        elif b:
            raise Bad(f"{path}:{no}: bench:begin inside region '{name}' (line {start})", 2)
        elif e:
            out.extend(["", *REGIONS[name](d, ctx), ""])
            out.append(line)
            name = None
    if name is not None:
        raise Bad(f"{path}:{start}: region '{name}' has no bench:end", 2)
    if not any(BEGIN.match(x) for x in out):
        raise Bad(f"{path}: no bench:begin marker (nothing to rewrite)", 2)
    return "\n".join(out)


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        raise Bad(f"{path}: {e}", 1) from e
    if not isinstance(d, dict) or d.get("format") != "stockpipe-bench-1":
        raise Bad(f"{path}: not the bench's results (format stockpipe-bench-1)", 1)
    return d


def run(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", help="results.json of one bench run")
    ap.add_argument("files", nargs="+", help="Markdown files with bench regions")
    ap.add_argument("--via", default="", help="what ran the bench, e.g. 'make bench-docs'")
    ap.add_argument("--commit", help="the commit measured (default: the JSON's version)")
    a = ap.parse_args(argv)
    d = load(a.results)
    ctx = {"via": a.via, "commit": a.commit or d.get("version") or "unknown"}
    new = {}
    for path in a.files:
        try:
            with open(path, encoding="utf-8") as f:
                new[path] = rewrite(path, f.read(), d, ctx)
        except OSError as e:
            raise Bad(f"{path}: {e.strerror}", 2) from e
    for path, text in new.items():
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"bench-docs: rewrote {path} from {a.results}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(run(sys.argv[1:]))
    except Bad as e:
        print(f"bench-docs: {e}", file=sys.stderr)
        sys.exit(e.code)
