#!/usr/bin/python3
"""Runs the code examples of a Markdown document as written, so that the docs
cannot drift from the code (tests/test_docs.c runs it on README.md and
docs/PROTOCOL.md in `make test`).

    doc_examples.py [--bin DIR] [--data DIR] [--keep] [--budget S] FILE.md ...

(--bin, --data: the binaries and the catalogue, by default SP_BIN_DIR and
SP_DATA_DIR or bin and data; --keep: keep the scenario's directory, which
is otherwise removed, to look at a failure; --budget: seconds for each
document, default BUDGET_S, after which it fails and cleans up.  A server
it started gets SIGINT if the runner itself dies.)

What it does with each fenced code block, in document order:

* `sh` / `bash`: every command runs, in order, in one scenario for the whole
  document: a fresh temporary directory with `bin` and `data` linked to the
  repository's (so `keys/`, `clients/`, `nats.auth`, `run/` land in it), and
  `python3` meaning the interpreter that runs this script (Debian's, with
  python3-zmq).  A command is a line (continued by a trailing backslash);
  blank lines and comment lines are not commands.  A command must exit 0 in
  COMMAND_TIMEOUT_S, unless its trailing comment holds "(exit N)": then it
  must exit N.  Its trailing comment may say "(runs until Ctrl-C)": it runs
  until it has printed something, then gets SIGINT and must exit 0.
  A shell variable assigned by a command (`id=$(...)`) is seen by the later
  commands of the document.
* Servers: a `bin/broker` command (not --keygen, --clean, --export, --help,
  --version) or `nats-server`, with or without a trailing `&`, starts in the
  background and is waited on until it serves (a broker: its contact file
  and `bin/monitor --instance NAME --once` answering; nats-server: its port
  taking connections).  A broker for an instance that already has one
  first stops the old one (SIGINT; it must exit 0).  At the end every server
  gets SIGINT and must exit 0, and nothing of the run's instances may be left
  in /dev/shm, /dev/mqueue or the run directory.
* `python`: runs with python3 and must exit 0, or, under the directive
  `<!-- example: file NAME -->`, is written to NAME in the scenario's
  directory for a later command to run.
* Untagged blocks are sample output or diagrams and are not run.  Under the
  directive `<!-- example: output -->` each of their lines must have the
  shape of a line some earlier command of the document printed: the same
  text once every number (with its unit: 54.3 us, 1.5 ms, 2.99 s) is masked.
* Wire layouts (docs/PROTOCOL.md): every `struct.Struct("FMT")` of the
  document is checked once: a heading or line that says "N bytes" with it
  must give N = struct.calcsize(FMT); a table with `offset` and `size`
  columns under it must list exactly the format's fields (offset and size of
  each); and a format used in a code block must be one the prose gives.
  Under `<!-- example: hexdump -->` an untagged block is an `xxd -g1` dump
  of one wire message: its offsets and text column must match its bytes,
  its length must be 16 + count x the record size of its kind (the kinds a
  record heading names), and every row of the table after it (`| 0xOFF |
  \`hex bytes\` | ...`) must show the bytes the dump has at that offset,
  at a field boundary of the header's and the records' formats.
* `<!-- example: skip — REASON -->` right above a block skips it; the
  skipped blocks are listed with their reasons.

Directives are HTML comments, invisible when the Markdown is rendered, on
the line above the fence (blank lines between are allowed).

Substitutions (SUBSTITUTIONS below) make the run unique and self-contained,
and nothing else is rewritten: the instance names the docs use become names
unique to this run, the fixed ports become free ones picked for this run,
the documentation's remote address is this host, and /tmp/ paths move into
the scenario's directory.  An example that cannot run as written is fixed
in the document, not here.

Exit status 0 when every example ran as written; 1 with a message naming
the document, line, command, exit status and the command's last output.
"""
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

COMMAND_TIMEOUT_S = 120   # one command
READY_TIMEOUT_S = 30      # a server until it serves
STOP_TIMEOUT_S = 30       # a server after SIGINT
CTRL_C_OUTPUT_S = 20      # a run-until-Ctrl-C command until its first output
CTRL_C_AFTER_S = 1.0      # ... and then this long before its SIGINT
TAIL_LINES = 25           # of a failing command's output
BUDGET_S = 240            # the whole document (--budget): then it fails and cleans up
PR_SET_PDEATHSIG = 1


def die_with_us():
    """In a child before exec: SIGINT when the runner dies (even by SIGKILL
    at the suite's timeout), so a server it started still stops cleanly."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT)

# Instance names used in the docs; each becomes NAME-dPID (unique to this run).
INSTANCES = ["shopA", "shopB", "shopC", "shop", "exdoc", "big"]
# Fixed ports: the broker's --tcp PORT (it uses PORT..PORT+4) and NATS's.
TCP_PORT, NATS_PORT = "5555", "4222"
# The address the docs give another machine: here it is this host.
REMOTE_HOST = "192.0.2.2"


def substitutions(tag, tcp_port, nats_port, tmp):
    """The table of what this run rewrites in every command, in order."""
    subs = [(re.compile(r"\b(%s)\b" % "|".join(INSTANCES)), lambda m: f"{m.group(1)}-{tag}")]
    subs += [
        (re.compile(r"\bHOST:PORT\b"), lambda m: f"127.0.0.1:{tcp_port}"),
        (re.compile(r"\b%s\b" % re.escape(REMOTE_HOST)), lambda m: "127.0.0.1"),
        (re.compile(r"\b%s\b" % TCP_PORT), lambda m: str(tcp_port)),
        (re.compile(r"\b%s\b" % NATS_PORT), lambda m: str(nats_port)),
        (re.compile(r"(?<![\w/.])/tmp/"), lambda m: f"{tmp}/tmp/"),
    ]
    return subs


class Failure(Exception):
    pass


# ---------------------------------------------------------------- parsing

FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")
DIRECTIVE = re.compile(r"^\s*<!--\s*example:\s*(.*?)\s*-->\s*$")


class Block:
    def __init__(self, lang, line, heading, text, directive):
        self.lang, self.line, self.heading = lang, line, heading
        self.text, self.directive = text, directive


def parse(path):
    """The fenced blocks of a Markdown file: language, line of the first
    code line, section heading, text (indent removed), directive."""
    blocks = []
    lines = open(path, encoding="utf-8").read().split("\n")
    heading, i = "", 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if lines[i].startswith("#") and not m:
            heading = lines[i].lstrip("#").strip()
        if not m:
            i += 1
            continue
        indent, lang = len(m.group(1)), m.group(2)
        directive, j = None, i - 1
        while j >= 0 and lines[j].strip() == "":
            j -= 1
        if j >= 0 and DIRECTIVE.match(lines[j]):
            directive = DIRECTIVE.match(lines[j]).group(1)
        body, k = [], i + 1
        while k < len(lines) and not re.match(r"^\s*```\s*$", lines[k]):
            body.append((k + 1, lines[k][indent:] if lines[k][:indent].strip() == "" else lines[k]))
            k += 1
        if k == len(lines):
            raise Failure(f"{path}:{i + 1}: code block never closed")
        blocks.append(Block(lang, i + 2, heading, body, directive))
        i = k + 1
    return blocks


def split_comment(line):
    """(command, trailing comment) of a shell line: '#' outside quotes and
    at the start of a word begins the comment."""
    quote, prev = None, " "
    for pos, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and prev in " \t":
            return line[:pos].rstrip(), line[pos + 1:].strip()
        prev = c
    return line.rstrip(), ""


class Command:
    def __init__(self, line, text, comment):
        self.line, self.text, self.comment = line, text, comment
        m = re.search(r"\(exit (\d+)\)", comment)
        self.expect = int(m.group(1)) if m else 0
        self.until_ctrl_c = "(runs until Ctrl-C)" in comment


def commands(block):
    """The commands of a shell block; a trailing backslash continues a line."""
    out, pending, first = [], "", 0
    for number, raw in block.text:
        text, comment = split_comment(raw)
        if not pending:
            first = number
        if text.endswith("\\"):
            pending += text[:-1].strip() + " "
            continue
        whole = (pending + text.strip()).strip()
        pending = ""
        if whole:
            out.append(Command(first, whole, comment))
    if pending.strip():
        raise Failure(f"line {first}: a continued line with nothing after it")
    return out


# ---------------------------------------------------------------- shapes

NUMBER = re.compile(r"[-+]?\d[\d.,]*(\s?(ns|us|ms|s)\b)?")


def shape(line):
    """A line with every number (and its unit) masked and spaces folded."""
    return " ".join(NUMBER.sub("#", line).split())


# ---------------------------------------------------------------- layouts

STRUCT = re.compile(r'struct\.Struct\("([^"]+)"\)')


def fields(fmt):
    """[(offset, size)] of each field of a little-endian struct format."""
    import struct
    out, off = [], 0
    for count, code in re.findall(r"(\d*)([xcbB?hHiIlLqQnNefdspP])", fmt.lstrip("<>=!@")):
        n = int(count or 1)
        size = struct.calcsize("<" + code)
        if code in "sp":
            out.append((off, n))
            off += n
        else:
            for _ in range(n):
                out.append((off, size))
                off += size
    return out


def check_layouts(doc, blocks):
    """The checks of the wire layouts (see the module's text); returns the
    header format and {kind: record format}."""
    import struct
    lines = open(doc, encoding="utf-8").read().split("\n")
    in_code = set()
    for b in blocks:
        in_code.update(n for n, _ in b.text)
    prose, header, kinds = set(), None, {}
    for i, line in enumerate(lines, start=1):
        m = STRUCT.search(line)
        if not m:
            continue
        fmt = m.group(1)
        size = struct.calcsize(fmt)
        said = re.search(r"(\d+) bytes", line)
        if said and int(said.group(1)) != size:
            raise Failure(f"{doc}:{i}: says {said.group(1)} bytes, but {fmt} is {size}")
        if i in in_code:
            if fmt not in prose:
                raise Failure(f"{doc}:{i}: {fmt} is none of the layouts the document gives "
                              f"({', '.join(sorted(prose))})")
            continue
        prose.add(fmt)
        if line.startswith("#"):
            for k in re.findall(r"kinds? ((?:\d+[^,)]*,?\s*)+)", line):
                for n in re.findall(r"\b(\d+) `", k):
                    kinds[int(n)] = fmt
        elif size == 16 and header is None:
            header = fmt
        # the table of its fields, if one follows before the next heading
        j = i
        while j < len(lines) and not lines[j].startswith("#") and not lines[j].startswith("|"):
            j += 1
        if j < len(lines) and re.match(r"^\|\s*offset\s*\|\s*size\s*\|", lines[j]):
            rows = []
            j += 2
            while j < len(lines) and lines[j].startswith("|"):
                cells = [c.strip() for c in lines[j].strip("|").split("|")]
                rows.append((int(cells[0]), int(cells[1])))
                j += 1
            if rows != fields(fmt):
                raise Failure(f"{doc}:{i}: the table of {fmt} gives fields (offset, size) "
                              f"{rows}, the format {fields(fmt)}")
    return header, kinds


def check_hexdump(doc, block, header, kinds, lines):
    import struct
    data, expect = b"", 0
    for number, line in block.text:
        m = re.match(r"^([0-9a-f]{8}): ((?:[0-9a-f]{2} )*[0-9a-f]{2})\s+(.*)$", line)
        if not m or int(m.group(1), 16) != expect:
            raise Failure(f"{doc}:{number}: not the xxd line of offset {expect:08x}: {line}")
        chunk = bytes.fromhex(m.group(2))
        text = "".join(chr(c) if 32 <= c < 127 else "." for c in chunk)
        if line[-len(chunk):] != text or m.group(3).strip() != text.strip():
            raise Failure(f"{doc}:{number}: the text column should read {text!r}")
        data += chunk
        expect += len(chunk)
    first = block.text[0][0]
    if header is None:
        raise Failure(f"{doc}:{first}: a hexdump, but no 16-byte header layout in the document")
    magic, _version, kind, count, _sender, _batch = struct.unpack_from(header, data)
    if data[:4] != b"SPW1" or kind not in kinds:
        raise Failure(f"{doc}:{first}: not a message of a kind the document lays out")
    record = kinds[kind]
    size = struct.calcsize(header) + count * struct.calcsize(record)
    if len(data) != size:
        raise Failure(f"{doc}:{first}: {len(data)} bytes; kind {kind} with {count} records "
                      f"of {record} is {size}")
    bounds = {off: n for off, n in fields(header)}
    for r in range(count):
        base = struct.calcsize(header) + r * struct.calcsize(record)
        bounds.update({base + off: n for off, n in fields(record)})
    j = block.text[-1][0] + 1  # the closing fence's line
    while j < len(lines) and not lines[j].startswith("|") and not lines[j].startswith("```"):
        j += 1
    if j >= len(lines) or not lines[j].startswith("|"):
        return
    bytes_column = "bytes" in lines[j]
    j += 2
    while j < len(lines) and lines[j].startswith("|"):
        cells = [c.strip() for c in lines[j].strip("|").split("|")]
        off = int(cells[0], 16)
        shown = bytes.fromhex(re.search(r"`([0-9a-f ]+)`", cells[1]).group(1))
        if data[off:off + len(shown)] != shown:
            raise Failure(f"{doc}:{j + 1}: the dump has {data[off:off + len(shown)].hex(' ')} "
                          f"at 0x{off:02x}, the table {shown.hex(' ')}")
        if off not in bounds or (bytes_column and bounds[off] != len(shown)):
            raise Failure(f"{doc}:{j + 1}: 0x{off:02x} ({len(shown)} bytes) is no field of "
                          f"{header} + {record}")
        j += 1


# ---------------------------------------------------------------- running


def tail(text, n=TAIL_LINES):
    lines = text.rstrip("\n").split("\n")
    return "\n".join("    | " + l for l in lines[-n:])


def free_port(count, taken):
    """The first of `count` consecutive loopback ports nobody binds now."""
    for base in range(30000 + (os.getpid() * 7) % 2000, 32700, count):
        ports = range(base, base + count)
        if any(p in taken for p in ports):
            continue
        ok = True
        for p in ports:
            for host in ("127.0.0.1", "0.0.0.0"):
                s = socket.socket()
                try:
                    s.bind((host, p))
                except OSError:
                    ok = False
                finally:
                    s.close()
        if ok:
            taken.update(ports)
            return base
    raise Failure("no free ports in 30000..32700")


class Scenario:
    def __init__(self, doc, bin_dir, data_dir, keep, budget):
        self.doc, self.keep, self.budget = doc, keep, budget
        self.deadline = time.monotonic() + budget
        self.tag = f"d{os.getpid()}"
        self.dir = tempfile.mkdtemp(prefix="spdoc-")
        os.mkdir(os.path.join(self.dir, "tmp"))
        os.mkdir(os.path.join(self.dir, ".path"))
        os.symlink(os.path.abspath(bin_dir), os.path.join(self.dir, "bin"))
        os.symlink(os.path.abspath(data_dir), os.path.join(self.dir, "data"))
        os.symlink(sys.executable, os.path.join(self.dir, ".path", "python3"))
        taken = set()
        self.tcp_port, self.nats_port = free_port(5, taken), free_port(1, taken)
        self.subs = substitutions(self.tag, self.tcp_port, self.nats_port, self.dir)
        self.env = dict(os.environ)
        self.env["PATH"] = os.path.join(self.dir, ".path") + ":" + os.environ.get("PATH", "/usr/bin:/bin")
        self.env.pop("SP_RUN_DIR", None)
        self.run_base = f"/tmp/stockpipe-{os.getuid()}"
        self.servers = {}   # key (instance or "nats:PORT") -> (Popen, log path, Command)
        self.outputs = []   # shapes of every line printed so far
        self.vars = os.path.join(self.dir, ".doc-vars")
        open(self.vars, "w").close()
        self.instances = set()
        self.ran = 0

    def timeout(self):
        """A command's bound: COMMAND_TIMEOUT_S, within the document's budget."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Failure(f"{self.doc}: not done within its budget of {self.budget} s")
        return min(COMMAND_TIMEOUT_S, left)

    def where(self, cmd):
        return f"{self.doc}:{cmd.line}: `{cmd.text}`"

    def rewrite(self, text):
        for pattern, repl in self.subs:
            text = pattern.sub(repl, text)
        return text

    def shell(self, text):
        """bash -c text, with the variables earlier commands assigned."""
        assigned = re.match(r"^([A-Za-z_]\w*)=", text)
        script = f". {self.vars}\n{text}"
        if assigned:
            script += f"\nrc=$?; declare -p {assigned.group(1)} >> {self.vars}; exit $rc"
        return ["bash", "-c", script]

    # -- servers

    def server_kind(self, text):
        words = text.split()
        prog = os.path.basename(words[0]) if words else ""
        if words and words[0].endswith("bin/broker"):
            if any(w in words for w in ("--keygen", "--clean", "--export", "--help", "--version")):
                return None
            inst = "stockpipe"
            for a, b in zip(words, words[1:]):
                if a == "--instance":
                    inst = b
            return inst
        if prog == "nats-server":
            return "nats"
        return None

    def start_server(self, cmd, text, key):
        text = text.rstrip().rstrip("&").rstrip()
        if key in self.servers:
            self.stop_server(key)
        log = os.path.join(self.dir, f".server-{len(self.servers)}-{cmd.line}.log")
        with open(log, "w") as f:
            proc = subprocess.Popen(self.shell("exec " + text), cwd=self.dir, env=self.env,
                                    stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    preexec_fn=die_with_us)
        self.servers[key] = (proc, log, cmd)
        if key != "nats":
            self.instances.add(key)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise Failure(f"{self.where(cmd)}: the server exited {proc.returncode} "
                              f"before it served:\n{tail(open(log).read())}")
            if self.serving(key, text):
                break
            if time.monotonic() > deadline:
                raise Failure(f"{self.where(cmd)}: not serving after {READY_TIMEOUT_S} s:\n"
                              f"{tail(open(log).read())}")
            time.sleep(0.05)
        self.ran += 1

    def serving(self, key, text):
        if key == "nats":
            m = re.search(r"-p\s+(\d+)", text)
            s = socket.socket()
            s.settimeout(1)
            try:
                s.connect(("127.0.0.1", int(m.group(1)) if m else 4222))
                return True
            except OSError:
                return False
            finally:
                s.close()
        if not os.path.exists(f"{self.run_base}/{key}/contact"):
            return False
        r = subprocess.run(["bin/monitor", "--instance", key, "--once"], cwd=self.dir,
                           env=self.env, capture_output=True, timeout=self.timeout(),
                           preexec_fn=die_with_us)
        return r.returncode == 0

    def stop_server(self, key):
        proc, log, cmd = self.servers.pop(key)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise Failure(f"{self.where(cmd)}: still running {STOP_TIMEOUT_S} s after "
                              f"SIGINT:\n{tail(open(log).read())}")
        out = open(log).read()
        self.outputs += [shape(l) for l in out.split("\n")]
        if proc.returncode != 0:
            raise Failure(f"{self.where(cmd)}: exited {proc.returncode} after SIGINT, not 0:\n"
                          f"{tail(out)}")

    # -- commands

    def run_command(self, cmd):
        text = self.rewrite(cmd.text)
        key = self.server_kind(text)
        if key is not None:
            self.start_server(cmd, text, key)
            return
        if cmd.until_ctrl_c:
            out, rc = self.run_until_ctrl_c(cmd, text)
        else:
            try:
                r = subprocess.run(self.shell(text), cwd=self.dir, env=self.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, timeout=self.timeout(),
                                   preexec_fn=die_with_us)
            except subprocess.TimeoutExpired as e:
                raise Failure(f"{self.where(cmd)}: still running after {e.timeout:.0f} s:\n"
                              f"{tail((e.stdout or b'').decode(errors='replace'))}")
            out, rc = r.stdout.decode(errors="replace"), r.returncode
        self.outputs += [shape(l) for l in out.split("\n")]
        self.ran += 1
        if rc != cmd.expect:
            ran = f" (run as `{text}`)" if text != cmd.text else ""
            raise Failure(f"{self.where(cmd)}{ran}: exit {rc}, expected {cmd.expect}:\n"
                          f"{tail(out)}")

    def run_until_ctrl_c(self, cmd, text):
        log = os.path.join(self.dir, f".ctrl-c-{cmd.line}.log")
        with open(log, "w") as f:
            proc = subprocess.Popen(self.shell("exec " + text), cwd=self.dir, env=self.env,
                                    stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    preexec_fn=die_with_us)
        deadline = time.monotonic() + CTRL_C_OUTPUT_S
        while proc.poll() is None and os.path.getsize(log) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is not None:
            raise Failure(f"{self.where(cmd)}: exited {proc.returncode} by itself; it should run "
                          f"until Ctrl-C:\n{tail(open(log).read())}")
        if os.path.getsize(log) == 0:
            proc.kill()
            proc.wait()
            raise Failure(f"{self.where(cmd)}: printed nothing in {CTRL_C_OUTPUT_S} s")
        time.sleep(CTRL_C_AFTER_S)  # let it run on a little: Ctrl-C comes later
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise Failure(f"{self.where(cmd)}: still running {STOP_TIMEOUT_S} s after SIGINT")
        return open(log).read(), proc.returncode

    def check_output(self, block):
        seen = set(self.outputs)
        for number, line in block.text:
            if line.strip() and shape(line) not in seen:
                raise Failure(f"{self.doc}:{number}: no example printed a line of this shape:\n"
                              f"    | {line}\n  (shape `{shape(line)}`; the document's "
                              f"commands printed, among others:\n"
                              f"{tail(chr(10).join(l for l in self.outputs if l), 12)})")

    # -- the end

    def finish(self):
        errors = []
        for key in list(self.servers):
            try:
                self.stop_server(key)
            except Failure as e:
                errors.append(str(e))
        left = []
        for d in ("/dev/shm", "/dev/mqueue"):
            if os.path.isdir(d):
                left += [f"{d}/{n}" for n in os.listdir(d) if self.tag in n]
        left += [f"{self.run_base}/{i}" for i in self.instances
                 if os.path.exists(f"{self.run_base}/{i}")]
        if left:
            errors.append(f"{self.doc}: left behind: {', '.join(sorted(left))}")
        if self.keep:
            print(f"{self.doc}: the scenario's directory stays: {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return errors


def run(doc, bin_dir, data_dir, keep, budget):
    doc = os.path.normpath(doc)
    sc = Scenario(doc, bin_dir, data_dir, keep, budget)
    skipped, errors = [], []
    try:
        blocks = parse(doc)
        lines = open(doc, encoding="utf-8").read().split("\n")
        header, kinds = check_layouts(doc, blocks)
        for b in blocks:
            if b.directive and b.directive.startswith("skip"):
                reason = re.sub(r"^skip\s*[—:-]?\s*", "", b.directive)
                if not reason:
                    raise Failure(f"{doc}:{b.line}: a skip without a reason")
                skipped.append(f"{doc}:{b.line} ({b.heading}): {reason}")
            elif b.lang in ("sh", "bash"):
                for cmd in commands(b):
                    sc.run_command(cmd)
            elif b.lang == "python":
                m = re.match(r"^file\s+(\S+)$", b.directive or "")
                code = "\n".join(l for _, l in b.text) + "\n"
                if m:
                    with open(os.path.join(sc.dir, m.group(1)), "w") as f:
                        f.write(code)
                else:
                    r = subprocess.run([sys.executable, "-"], input=code.encode(), cwd=sc.dir,
                                       env=sc.env, capture_output=True, timeout=sc.timeout())
                    if r.returncode != 0:
                        raise Failure(f"{doc}:{b.line}: the python block exited {r.returncode}:\n"
                                      f"{tail((r.stdout + r.stderr).decode(errors='replace'))}")
                    sc.ran += 1
            elif b.directive == "hexdump":
                check_hexdump(doc, b, header, kinds, lines)
                sc.ran += 1
            elif b.directive == "output":
                sc.check_output(b)
                sc.ran += 1
            elif b.directive:
                raise Failure(f"{doc}:{b.line}: unknown directive `{b.directive}` "
                              f"for a `{b.lang or 'untagged'}` block")
    except Failure as e:
        errors.append(str(e))
    errors += sc.finish()
    for s in skipped:
        print(f"skipped {s}")
    for e in errors:
        print(f"FAILED {e}")
    if not errors:
        print(f"{doc}: {sc.ran} examples ran as written, {len(skipped)} skipped")
    return not errors


def main(argv):
    bin_dir = os.environ.get("SP_BIN_DIR") or "bin"
    data_dir = os.environ.get("SP_DATA_DIR") or "data"
    keep, budget, docs, args = False, BUDGET_S, [], list(argv)
    while args:
        a = args.pop(0)
        if a == "--bin" and args:
            bin_dir = args.pop(0)
        elif a == "--data" and args:
            data_dir = args.pop(0)
        elif a == "--keep":
            keep = True
        elif a == "--budget" and args and args[0].isdigit():
            budget = int(args.pop(0))
        elif a.startswith("-"):
            sys.exit(f"doc_examples.py: unknown option {a}; usage: "
                     f"doc_examples.py [--bin DIR] [--data DIR] [--keep] [--budget S] FILE.md ...")
        else:
            docs.append(a)
    if not docs:
        sys.exit("doc_examples.py: no Markdown file given")
    ok = True
    for d in docs:
        try:
            ok = run(d, bin_dir, data_dir, keep, budget) and ok
        except Failure as e:
            print(f"FAILED {e}")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
