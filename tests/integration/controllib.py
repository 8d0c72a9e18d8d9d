"""Helpers for the control-socket and metrics tests (standard library only).

* run_vhostctl(): one tools/vhostctl run, with its exit status and output.
* parse_table(): vhostctl's aligned human-readable table as a list of dicts.
* control_request(): raw bytes to the control socket, the answer back.
* http_get(): one HTTP/1.0 exchange with the metrics endpoint, read to EOF.
* parse_metrics(): the Prometheus text format 0.0.4, strictly: every sample
  belongs to a family announced by `# HELP` and `# TYPE` lines.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess

import harness
from harness import check

VHOSTCTL_TIMEOUT_S = 30


def add_args(parser):
    parser.add_argument("--vhostctl", default=os.environ.get("VHOSTCTL", ""),
                        help="path of the vhostctl binary (tools/vhostctl)")


def require_vhostctl(env):
    path = env.args.vhostctl
    if not path or not os.access(path, os.X_OK):
        raise harness.TestFailure(f"vhostctl binary not found or not executable: {path!r}")
    return path


def run_vhostctl(env, sock, *args, expect_rc=0):
    """Runs `vhostctl -s SOCK ARGS...`; returns (rc, stdout, stderr)."""
    argv = [require_vhostctl(env), "-s", sock] + list(args)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=VHOSTCTL_TIMEOUT_S,
                          check=False)
    harness.log(f"vhostctl {' '.join(args)}: exit {proc.returncode}"
                + (f", stderr: {proc.stderr.strip()}" if proc.stderr.strip() else ""))
    if expect_rc is not None:
        check(proc.returncode == expect_rc,
              f"vhostctl {' '.join(args)} exited {proc.returncode}, expected {expect_rc}: "
              f"stdout {proc.stdout[:500]!r} stderr {proc.stderr[:500]!r}")
    return proc.returncode, proc.stdout, proc.stderr


def vhostctl_json(env, sock, *args):
    """`vhostctl --json ARGS`: the daemon's `result` (the response must be ok)."""
    _rc, out, _err = run_vhostctl(env, sock, "--json", *args)
    lines = out.strip().splitlines()
    check(len(lines) == 1, f"vhostctl --json {' '.join(args)} printed {len(lines)} lines, expected 1")
    resp = json.loads(lines[0])
    check(resp.get("ok") is True, f"vhostctl --json {' '.join(args)}: not ok: {resp}")
    return resp["result"]


def parse_table(text):
    """The first table of vhostctl's output: [{HEADER: cell}], cells split at spaces."""
    lines = text.splitlines()
    check(lines, "vhostctl printed nothing")
    header = lines[0].split()
    rows = []
    for line in lines[1:]:
        if not line.strip():
            break
        cells = line.split()
        check(len(cells) == len(header),
              f"table row {line!r} has {len(cells)} cells, the header {len(header)}")
        rows.append(dict(zip(header, cells)))
    return rows


def control_request(sock_path, data, *, timeout=20, read_to_eof=False):
    """Sends `data`, returns the answer: one line, or everything up to EOF."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # A blocking connect, as vhostctl's: with a timeout set, Python's
        # connect is non-blocking and fails (EAGAIN) while the backlog is full.
        s.connect(sock_path)
        s.settimeout(timeout)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon closed on us mid-send (oversized request): read what it said
        got = b""
        while True:
            if not read_to_eof and b"\n" in got:
                break
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
        return got
    finally:
        s.close()


def control_json(sock_path, obj):
    line = control_request(sock_path, (json.dumps(obj) + "\n").encode())
    return json.loads(line.decode().splitlines()[0])


def http_get(host, port, request, *, timeout=20):
    """Sends raw `request` bytes; returns (status code, headers dict, body) read to EOF."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head, sep, body = data.partition(b"\r\n\r\n")
    check(sep, f"HTTP response without a header end: {data[:200]!r}")
    lines = head.decode().split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ", lines[0])
    check(m, f"bad HTTP status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        check(int(headers["content-length"]) == len(body),
              f"Content-Length {headers['content-length']} but {len(body)} body bytes")
    return int(m.group(1)), headers, body.decode()


METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE_RE = re.compile(rf"^({METRIC_NAME})(?:\{{(.*)\}})? (\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_metrics(text):
    """{name: {"type": t, "help": h, "samples": {frozenset(labels): float}}}."""
    families = {}
    current = None
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            check(name not in families, f"metric family {name} announced twice")
            families[name] = {"help": help_text, "type": None, "samples": {}}
            current = name
            continue
        if line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            check(name == current, f"# TYPE {name} does not follow its # HELP")
            check(typ in ("counter", "gauge"), f"{name}: unexpected type {typ}")
            families[name]["type"] = typ
            continue
        check(not line.startswith("#"), f"unexpected comment line {line!r}")
        m = SAMPLE_RE.match(line)
        check(m, f"not a sample line: {line!r}")
        name, labels_text, value = m.groups()
        check(name == current and families[name]["type"],
              f"sample {name} outside its family (after {current})")
        labels = {}
        pos = 0
        labels_text = labels_text or ""
        while pos < len(labels_text):
            lm = LABEL_RE.match(labels_text, pos)
            check(lm, f"bad labels in {line!r}")
            labels[lm.group(1)] = lm.group(2)
            pos = lm.end()
        key = frozenset(labels.items())
        check(key not in families[name]["samples"], f"duplicate sample {line!r}")
        families[name]["samples"][key] = float(value)
    for name, fam in families.items():
        if fam["type"] == "counter":
            check(name.endswith("_total"), f"counter {name} does not end in _total")
    return families


def sample(families, name, **labels):
    fam = families.get(name)
    check(fam is not None, f"metric family {name} missing")
    key = frozenset(labels.items())
    check(key in fam["samples"], f"{name}{labels} missing; have {list(fam['samples'])[:5]}")
    return fam["samples"][key]


COUNTER_FIELDS = ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "errors")
DROP_REASONS = ("no_buffer", "too_big", "broken", "no_route")


def stats_by_queue(result):
    """`show stats` JSON -> {(port, queue): {field: int}} with drops as drop_<reason>."""
    out = {}
    for p in result["ports"]:
        for q in p["queues"]:
            row = {f: q[f] for f in COUNTER_FIELDS}
            for r in DROP_REASONS:
                row["drop_" + r] = q["drops"][r]
            out[(p["name"], q["queue"])] = row
    return out
