#!/usr/bin/env python3
"""make mutants: our own small mutation run (tests/mutants/mutants.txt).

For each mutant of the list: apply its exact text replacement to a scratch
copy of the tree (build/mutants/tree, one copy reused: the file is restored
after each mutant), build the role binaries and the test binary there
(incrementally), run the suites of the mutated module with a time bound and,
if the mutant is still alive, a wider bounded run.  A mutant is killed when a
run fails; the tests that failed are reported.  A mutant whose text is not
found exactly once is an error of the list (exit 2), not a survivor.

Usage: run.py [--list FILE] [--only ID,ID] [--module PATH,PATH] [--changed REF] [--sample N]
              [--sample-seed S] [--no-wide] [--check] [--jobs N] [--before REV]
              [--interleave]
Environment (make passes them): MUTANTS_DIR (the scratch folder, default
build/mutants), MUTANTS_SUITE_TIMEOUT (s, default 300),
MUTANTS_WIDE (Criterion filter of the wider run; default: the whole suite
but the load, flood and chaos suites), MUTANTS_WIDE_TIMEOUT (s, default 600).
Report: a line per mutant, a table per module, build/mutants/report.txt.
Exit status: 0 when every mutant not marked equivalent was killed, 1 when
some survived, 2 on an error of the list or of the unmutated build.
"""
import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRATCH = os.path.join(ROOT, os.environ.get("MUTANTS_DIR", "build/mutants"))
TREE = os.path.join(SCRATCH, "tree")

# The suites that exercise each module (a mutant may name its own: suites:).
SUITES = {
    "common/sp_commit.c": "commit table once faults",
    "common/sp_wire.c": "wire malformed protocol fuzz_corpus",
    "common/sp_journal.c": "journal faults recover",
    "broker/sp_recover.c": "recover faults",
    "common/sp_table.c": "table faults instance",
    "consumer/sp_mirror.c": "mirror",
    "common/sp_mq.c": "mq link faults",
    "common/sp_shmlink.c": "shm link",
    "common/sp_zlink.c": "link client",
    "common/sp_ring.c": "ring shm",
}
DEFAULT_WIDE = "!(@(bench|raw|chaos|cluster|flood|loadgen|remote))/*"


def parse_list(path):
    """Blocks of 'key: value' lines, separated by blank lines; '#' comments.
    In from/to, \\n stands for a newline (and \\\\ for a backslash)."""
    muts, cur = [], {}
    with open(path, encoding="utf-8") as f:
        for ln, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if line.startswith("#"):
                continue
            if not line.strip():
                if cur:
                    muts.append(cur)
                    cur = {}
                continue
            m = re.match(r"^(\w+):(?: (.*))?$", line)
            if not m:
                sys.exit(f"{path}:{ln}: expected 'key: value', got {line!r}")
            key, val = m.group(1), m.group(2) or ""
            if key in ("from", "to"):
                val = val.replace("\\\\", "\0").replace("\\n", "\n").replace("\0", "\\")
            if key in cur:
                sys.exit(f"{path}:{ln}: {key} given twice in mutant {cur.get('id')}")
            cur[key] = val
            cur.setdefault("_line", ln)
    if cur:
        muts.append(cur)
    seen = set()
    for m in muts:
        for k in ("id", "file", "from", "to", "why"):
            if k not in m:
                sys.exit(f"{path}:{m['_line']}: mutant {m.get('id', '?')} has no {k}:")
        if m["id"] in seen:
            sys.exit(f"{path}:{m['_line']}: mutant id {m['id']} is used twice")
        seen.add(m["id"])
    return muts


def check_texts(muts, base):
    bad = 0
    for m in muts:
        with open(os.path.join(base, m["file"]), encoding="utf-8") as f:
            n = f.read().count(m["from"])
        if n != 1:
            print(f"mutant {m['id']}: its text is found {n} times in {m['file']}, not once:\n"
                  f"  {m['from']!r}", file=sys.stderr)
            bad += 1
    return bad


def sh(cmd, timeout=None, cwd=TREE, env=None):
    """Runs cmd; returns (rc, output); rc 124 on timeout (the group is killed)."""
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True, text=True, errors="replace")
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        out, _ = p.communicate()
        return 124, out


def copy_tree():
    """The tracked and untracked-not-ignored files, copied with their times."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    os.makedirs(TREE, exist_ok=True)
    for f in files:
        if not f:
            continue
        f = f.decode()
        src, dst = os.path.join(ROOT, f), os.path.join(TREE, f)
        if not os.path.isfile(src):
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not os.path.exists(dst):
            shutil.copy2(src, dst)  # its time too: the seeded objects stay valid
            continue
        with open(src, "rb") as a, open(dst, "rb") as b:
            if a.read() == b.read():
                continue
        shutil.copyfile(src, dst)  # a new time: make rebuilds what depends on it


def setup_before(rev):
    """The tests as they were at rev, in tests/before/ of the scratch copy, to
    measure a 'before' with the same mutated build (only their binary is
    linked apart).  Files are rewritten only when they differ."""
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "tests"], cwd=ROOT,
                           capture_output=True, check=True, text=True).stdout.split()
    for rel in names:
        data = subprocess.run(["git", "show", f"{rev}:{rel}"], cwd=ROOT, capture_output=True,
                              check=True).stdout
        dst = os.path.join(TREE, "tests", "before", os.path.relpath(rel, "tests"))
        try:
            with open(dst, "rb") as f:
                if f.read() == data:
                    continue
        except FileNotFoundError:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "wb") as f:
            f.write(data)
    srcs = sorted(n for n in names if re.match(r"tests/test_[^/]*\.c$", n))
    srcs += ["tests/sp_testutil.c"]
    srcs += sorted(n for n in names if re.match(r"tests/fuzz/spf_[^/]*\.c$", n))
    return ["tests/before/" + os.path.relpath(n, "tests") for n in srcs]


BEFORE_BIN = "build/release/tests/before/stockpipe-tests"
NEW_BIN = "build/release/tests/stockpipe-tests"


def seed_build():
    """A first scratch copy starts from the tree's own build (objects newer
    than the copied sources, so only what differs is rebuilt)."""
    for d in ("build/release", "bin"):
        src, dst = os.path.join(ROOT, d), os.path.join(TREE, d)
        if os.path.isdir(src) and not os.path.exists(dst):
            shutil.copytree(src, dst, symlinks=True)
    stamp = os.path.join(ROOT, "build/.deps-ok")
    if os.path.exists(stamp) and not os.path.exists(os.path.join(TREE, "build/.deps-ok")):
        shutil.copy2(stamp, os.path.join(TREE, "build/.deps-ok"))


def build(jobs, before_src=None):
    # WERROR= : a mutant may leave a parameter or variable unused; a warning
    # is not what a mutant is there to test (CI passes WERROR=1 to make).
    make = ["make", f"-j{jobs}", "--no-print-directory", "WERROR="]
    rc, out = sh(make + ["all", NEW_BIN], timeout=1800)
    if rc == 0 and before_src:
        rc, out = sh(make + ["TEST_SRC=" + " ".join(before_src),
                      "TEST_BIN=" + BEFORE_BIN, BEFORE_BIN], timeout=1800)
    return rc, out


FAIL_RE = re.compile(r"^\[FAIL\] (\S+?):? ", re.M)
CRASH_RE = re.compile(r"^\[----\] (\S+): (?:CRASH|Timed out)", re.M)


def ipc_names():
    names = set()
    for d in ("/dev/shm", "/dev/mqueue"):
        try:
            names |= {os.path.join(d, n) for n in os.listdir(d)}
        except OSError:
            pass
    return names


PID_RE = re.compile(r"-(\d+)(?:[-.]|$)")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def remove_leftovers(before):
    """IPC objects a run left (a mutant that crashes a test skips its clean-up):
    those that appeared during the run and whose test process (the pid in the
    name, as tests/sp_testutil names them) is gone."""
    for p in ipc_names() - before:
        m = PID_RE.search(os.path.basename(p))
        if m and not alive(int(m.group(1))):
            try:
                os.remove(p)
            except OSError:
                pass


def run_suites(binary, flt, timeout):
    env = dict(os.environ, SP_BIN_DIR=os.path.join(TREE, "bin"),
               SP_DATA_DIR=os.path.join(TREE, "data"),
               SP_FUZZ_CORPUS=os.path.join(TREE, "tests/fuzz/corpus"))
    before = ipc_names()
    rc, out = sh([binary, "--jobs", "2", f"--filter={flt}"],
                 timeout=timeout, env=env)
    remove_leftovers(before)
    failed = sorted(set(FAIL_RE.findall(out)))
    return rc, failed, out


def suites_filter(names):
    names = names.split()
    return names[0] + "/*" if len(names) == 1 else "@(" + "|".join(names) + ")/*"


def table(results, col):
    """The per-module table of column col (1: verdict, 3: before) of rows
    (mutant, verdict, killed by, before); and the survivors."""
    mods, tot = {}, {"killed": 0, "survived": 0, "equivalent": 0, "ERROR": 0, "": 0}
    for r in results:
        d = mods.setdefault(r[0]["file"], dict.fromkeys(tot, 0))
        d[r[col]] += 1
    lines = [f"{'module':<24} {'mutants':>7} {'killed':>6} {'survived':>8} {'equiv.':>6}"]
    for f in sorted(mods):
        d = mods[f]
        for k in tot:
            tot[k] += d[k]
        lines.append(f"{f:<24} {sum(d.values()):>7} {d['killed']:>6} {d['survived']:>8} "
                     f"{d['equivalent']:>6}")
    lines.append(f"{'total':<24} {sum(tot.values()):>7} {tot['killed']:>6} "
                 f"{tot['survived']:>8} {tot['equivalent']:>6}")
    scored = tot["killed"] + tot["survived"]
    if scored:
        lines.append(f"score: {tot['killed']}/{scored} killed "
                     f"({100.0 * tot['killed'] / scored:.0f} %), equivalent ones left out")
    surv = [r[0]["id"] for r in results if r[col] == "survived"]
    if surv:
        lines.append("survived: " + " ".join(surv))
    return lines, surv


def merge_reports(paths, muts):
    """Rows of report files, a later file's row of a mutant replacing an
    earlier one's; the tables of what they hold."""
    by_id = {m["id"]: m for m in muts}
    rows = {}
    for p in paths:
        with open(p, encoding="utf-8") as f:
            for line in f:
                c = line.rstrip("\n").split("\t")
                if len(c) >= 5 and c[0] in by_id:
                    m = by_id[c[0]]
                    # the list's word on equivalence is the current one
                    v, b = c[2], c[4]
                    if m.get("equivalent"):
                        v = "equivalent" if v == "survived" else v
                        b = "equivalent" if b == "survived" else b
                    rows[c[0]] = (m, v, c[3], b)
    res = [rows[m["id"]] for m in muts if m["id"] in rows]
    before, _ = table(res, 3)
    after, _ = table(res, 1)
    print("before:\n" + "\n".join(before) + "\n\nafter:\n" + "\n".join(after))
    missing = [m["id"] for m in muts if m["id"] not in rows]
    if missing:
        print("not measured: " + " ".join(missing))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--list", default=os.path.join(ROOT, "tests/mutants/mutants.txt"))
    ap.add_argument("--only", default="")
    ap.add_argument("--module", default="", help="only the mutants of these files")
    ap.add_argument("--changed", default="", metavar="REF",
                    help="only the mutants of the modules changed against REF (all when none "
                         "changed or REF is unknown)")
    ap.add_argument("--sample", type=int, default=0, help="a sample of N mutants")
    ap.add_argument("--sample-seed", default="", help="the sample's seed (default: the date)")
    ap.add_argument("--no-wide", action="store_true", help="skip the wider run")
    ap.add_argument("--check", action="store_true", help="check the list's texts and stop")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--merge", nargs="+", metavar="REPORT",
                    help="print the tables of these report files (a later row of a mutant "
                         "replaces an earlier one) and stop")
    ap.add_argument("--before", default="",
                    help="also run the tests as they were at this git revision on each mutant "
                         "(the 'before' of a measure, from the same build)")
    ap.add_argument("--interleave", action="store_true",
                    help="take the modules in turn (a run cut short still covers each)")
    a = ap.parse_args()

    muts = parse_list(a.list)
    if check_texts(muts, ROOT):
        return 2
    if a.merge:
        return merge_reports(a.merge, muts)
    if a.check:
        print(f"{len(muts)} mutants, each text found once")
        return 0
    if a.only:
        want = set(a.only.split(","))
        unknown = want - {m["id"] for m in muts}
        if unknown:
            print(f"no mutant named {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        muts = [m for m in muts if m["id"] in want]
    if a.module:
        mods = set(a.module.split(","))
        muts = [m for m in muts if m["file"] in mods]
    if a.changed:
        r = subprocess.run(["git", "diff", "--name-only", a.changed], cwd=ROOT,
                           capture_output=True, text=True)
        changed = set(r.stdout.split()) if r.returncode == 0 else None
        picked = [m for m in muts if changed and m["file"] in changed]
        if changed is None:
            print(f"--changed: {a.changed} is not known here: every module's mutants")
        elif not picked:
            print(f"--changed: no module of the list changed against {a.changed}: every module's")
        else:
            muts = picked
            print(f"--changed: the mutants of {', '.join(sorted({m['file'] for m in muts}))}")
    if a.sample and a.sample < len(muts):
        seed = a.sample_seed or time.strftime("%Y-%m-%d")
        muts = random.Random(seed).sample(muts, a.sample)
        print(f"a sample of {a.sample} mutants (seed {seed})")
    suite_t = int(os.environ.get("MUTANTS_SUITE_TIMEOUT", "300"))
    wide = os.environ.get("MUTANTS_WIDE", DEFAULT_WIDE)
    wide_t = int(os.environ.get("MUTANTS_WIDE_TIMEOUT", "600"))

    copy_tree()
    before_src = setup_before(a.before) if a.before else None
    seed_build()
    if a.interleave:
        by_file = {}
        for m in muts:
            by_file.setdefault(m["file"], []).append(m)
        lists = list(by_file.values())
        muts = [l[i] for i in range(max(map(len, lists))) for l in lists if i < len(l)]
    print(f"scratch copy {TREE}: building it unmutated", flush=True)
    rc, out = build(a.jobs, before_src)
    if rc != 0:
        print(out[-4000:])
        print("the unmutated scratch copy does not build", file=sys.stderr)
        return 2
    report_path = os.path.join(SCRATCH, "report.txt")
    os.makedirs(SCRATCH, exist_ok=True)
    with open(report_path, "w", encoding="utf-8") as f:
        f.write("id\tfile\tverdict\tkilled by\tbefore\tbefore killed by\n")

    def verdict_of(binary, runs):
        for flt, tmo in runs:
            rc, failed, out = run_suites(binary, flt, tmo)
            if failed:
                return "killed", " ".join(failed)
            if rc == 124:
                return "killed", f"time-out of {flt} after {tmo}s"
            if rc != 0:
                tail = " | ".join(out.strip().splitlines()[-3:])
                return "killed", f"{flt} exited {rc}: {tail[:200]}"
        return "survived", ""

    results = []
    for i, m in enumerate(muts, 1):
        path = os.path.join(TREE, m["file"])
        with open(path, encoding="utf-8") as f:
            orig = f.read()
        t0 = time.time()
        verdict, by, before, bby = "survived", "", "", ""
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(orig.replace(m["from"], m["to"], 1))
            rc, out = build(a.jobs, before_src)
            if rc != 0:
                verdict, by = "ERROR", "does not build: " + " ".join(
                    l for l in out.splitlines() if "error" in l)[:300]
            else:
                suites = m.get("suites", SUITES.get(m["file"], ""))
                runs = [(suites_filter(suites), suite_t)] if suites else []
                if before_src:
                    before, bby = verdict_of(BEFORE_BIN, runs)
                verdict, by = verdict_of(NEW_BIN, runs)
                if verdict == "survived" and not a.no_wide and wide:
                    verdict, by = verdict_of(NEW_BIN, [(wide, wide_t)])
        finally:
            with open(path, "w", encoding="utf-8") as f:
                f.write(orig)
        if m.get("equivalent"):
            verdict = "equivalent" if verdict == "survived" else verdict
            before = "equivalent" if before == "survived" else before
        results.append((m, verdict, by, before))
        with open(report_path, "a", encoding="utf-8") as f:
            f.write(f"{m['id']}\t{m['file']}\t{verdict}\t{by}\t{before}\t{bby}\n")
        was = f" (before: {before})" if before else ""
        print(f"[{i}/{len(muts)}] {m['id']:<22} {verdict:<10}{was} {time.time() - t0:4.0f}s  "
              f"{by or m['why'][:70]}", flush=True)
    # leave the copy built unmutated
    build(a.jobs, before_src)

    lines, surv = table(results, 1)
    if before_src:
        blines, _ = table(results, 3)
        lines = [f"before (tests of {a.before}):"] + blines + ["", "after (these tests):"] + lines
    errs = [r[0]["id"] for r in results if r[1] == "ERROR"]
    if errs:
        lines.append("did not build: " + " ".join(errs))
    report = "\n".join(lines)
    print(report)
    with open(report_path, "a", encoding="utf-8") as f:
        f.write(report + "\n")
    return 2 if errs else (1 if surv else 0)


if __name__ == "__main__":
    sys.exit(main())
