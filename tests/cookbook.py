#!/usr/bin/env python3
"""Runs every example of docs/COOKBOOK.md, in order, and checks what each
prints against the output block the cookbook shows for it.

Usage: cookbook.py GOROUTINED COOKBOOK

A comment line `<!-- example: NAME KIND [port=N] -->` names the fenced block
after it. KIND is one of:
  file        saved as NAME in a temporary folder
  lua         saved as NAME and run with `GOROUTINED run NAME`
  sh          run with `bash -e`
  python      saved as NAME and run with python3
  node        saved as NAME and run with node
  background  started with bash and left running until the end; it listens
              on 127.0.0.1:N in the cookbook (port=N): the test starts it on
              port 0 and reads the real port from the first
              `on 127.0.0.1:PORT` (or `on http://127.0.0.1:PORT`) it prints, and every later block gets the real port for N
  output      what example NAME prints: each line must match one line of the
              output, in order (other lines may come between); `...` stands
              for any text. A background's output is checked at the end.
Every example that runs must have an output block. COOKBOOK_VERBOSE=1
prints what each example printed. Everything listens on
127.0.0.1 only; background processes are stopped by their PID.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

RUN_KINDS = {"lua", "sh", "python", "node"}
KINDS = RUN_KINDS | {"file", "background", "output"}
MARKER = re.compile(r"^<!-- example: (\S+) (\w+)((?: \w+=\S+)*) -->$")
RUN_TIMEOUT_S = 120
START_TIMEOUT_S = 20


class Failure(Exception):
    pass


def parse(text):
    """The examples: (name, kind, options, body), in the cookbook's order."""
    lines = text.split("\n")
    examples = []
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        i += 1
        if not m:
            continue
        name, kind = m.group(1), m.group(2)
        if kind not in KINDS:
            raise Failure(f"line {i}: unknown example kind '{kind}'")
        opts = dict(o.split("=", 1) for o in m.group(3).split())
        while i < len(lines) and lines[i].strip() == "":
            i += 1
        if i >= len(lines) or not lines[i].startswith("```"):
            raise Failure(f"line {i}: example {name} {kind} has no code block after it")
        start = i + 1
        end = start
        while end < len(lines) and lines[end] != "```":
            end += 1
        if end == len(lines):
            raise Failure(f"line {start}: the code block of {name} is not closed")
        examples.append((name, kind, opts, "\n".join(lines[start:end]) + "\n"))
        i = end + 1
    return examples


def pattern_of(line):
    parts = [re.escape(p) for p in line.rstrip().split("...")]
    return re.compile(".*".join(parts) + r"\Z")


def first_mismatch(expected, actual):
    """The first expected line that no later output line matches, or None."""
    lines = [a.rstrip() for a in actual.split("\n")]
    j = 0
    for want in expected.split("\n"):
        if not want.strip():
            continue
        rx = pattern_of(want)
        while j < len(lines) and not rx.match(lines[j]):
            j += 1
        if j == len(lines):
            return want
        j += 1
    return None


def self_check():
    """The matcher itself: order matters, `...` is a wildcard, and a line
    that is not there is found missing."""
    assert first_mismatch("a\nc", "a\nb\nc\n") is None
    assert first_mismatch("c\na", "a\nb\nc\n") == "a"
    assert first_mismatch("job-... ok", "x\njob-Ab3 ok\n") is None
    assert first_mismatch("job-... ok", "job-Ab3 failed\n") == "job-... ok"


class Runner:
    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir
        self.ports = {}  # the cookbook's port -> the real one
        self.background = {}  # name -> (process, log path)
        self.outputs = {}  # name -> what it printed

    def substitute(self, text):
        text = text.replace("build/normal/goroutined", self.binary)
        for doc, real in self.ports.items():
            text = text.replace(f"127.0.0.1:{doc}", f"127.0.0.1:{real}")
        return text

    def save(self, name, body):
        with open(os.path.join(self.workdir, name), "w") as f:
            f.write(self.substitute(body))

    def run(self, name, kind, body):
        if kind == "sh":
            command = ["bash", "-e", "-c", self.substitute(body)]
        else:
            self.save(name, body)
            command = {"lua": [self.binary, "run", name],
                       "python": [sys.executable, name],
                       "node": ["node", name]}[kind]
        try:
            done = subprocess.run(command, cwd=self.workdir, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True,
                                  timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise Failure(f"{name}: still running after {RUN_TIMEOUT_S} s")
        if done.returncode != 0:
            raise Failure(f"{name}: exit status {done.returncode}; it printed:\n{done.stdout}")
        self.outputs[name] = done.stdout
        if os.environ.get("COOKBOOK_VERBOSE"):
            print(f"---- {name}\n{done.stdout}", end="")

    def start(self, name, opts, body):
        if "port" not in opts:
            raise Failure(f"{name}: a background example needs port=N")
        doc_port = opts["port"]
        script = self.substitute(re.sub(rf"\b{re.escape(doc_port)}\b", "0", body))
        log_path = os.path.join(self.workdir, name + ".log")
        with open(log_path, "w") as log:
            process = subprocess.Popen(["bash", "-c", "exec " + script.strip()],
                                       cwd=self.workdir, stdout=log,
                                       stderr=subprocess.STDOUT,
                                       env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.background[name] = (process, log_path)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with open(log_path) as f:
                m = re.search(r"on (?:http://)?127\.0\.0\.1:(\d+)", f.read())
            if m and m.group(1) != "0":
                self.ports[doc_port] = m.group(1)
                return
            if process.poll() is not None:
                break
            time.sleep(0.05)
        with open(log_path) as f:
            raise Failure(f"{name}: did not say its port; it printed:\n{f.read()}")

    def check(self, name, expected):
        if name not in self.outputs:
            raise Failure(f"output of {name}, which has not run (or is not an example)")
        literal = re.sub(r"\.\.\.|\s", "", expected)
        if not literal:
            raise Failure(f"the output block of {name} expects nothing")
        missing = first_mismatch(self.substitute(expected), self.outputs[name])
        if missing is not None:
            raise Failure(f"{name}: expected a line like\n  {missing}\n"
                          f"(in this order), but it printed:\n{self.outputs[name]}")

    def stop_all(self):
        for name, (process, log_path) in self.background.items():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            with open(log_path) as f:
                self.outputs[name] = f.read()


def main():
    if len(sys.argv) != 3:
        print("usage: cookbook.py GOROUTINED COOKBOOK", file=sys.stderr)
        return 2
    self_check()
    binary = os.path.realpath(sys.argv[1])
    with open(sys.argv[2]) as f:
        examples = parse(f.read())
    ran = [n for n, k, _, _ in examples if k in RUN_KINDS]
    checked = {n for n, k, _, _ in examples if k == "output"}
    unchecked = [n for n in ran if n not in checked]
    if unchecked:
        raise Failure(f"examples without an output block: {', '.join(unchecked)}")
    workdir = tempfile.mkdtemp(prefix="cookbook.")
    runner = Runner(binary, workdir)
    deferred = []
    try:
        for name, kind, opts, body in examples:
            if kind == "file":
                runner.save(name, body)
            elif kind == "background":
                runner.start(name, opts, body)
            elif kind == "output" and name in runner.background:
                deferred.append((name, body))
            elif kind == "output":
                runner.check(name, body)
            else:
                runner.run(name, kind, body)
        runner.stop_all()
        for name, body in deferred:
            runner.check(name, body)
    finally:
        runner.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"cookbook: ok ({len(ran)} examples run, {len(runner.background)} services)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as failure:
        print(f"cookbook: FAIL: {failure}")
        sys.exit(1)
