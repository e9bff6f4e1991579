#!/usr/bin/env python3
"""Idle RSS of a starfish server, and the memory one idle connection costs,
over TLS and over plain HTTP (same binary, same run).

    python3 bench/tls_memory.py BIN CERT_DIR [CONNECTIONS]

CERT_DIR holds ca.pem, cert.pem and key.pem (scripts/tls-certs CERT_DIR).
For each mode: start `BIN serve --memory --threads 1` on an ephemeral port,
read its VmRSS after a few requests (warm, idle), open CONNECTIONS
(default 500) keep-alive connections that each complete the handshake and
one GET /v1/health, keep them idle, read VmRSS again; the difference divided
by CONNECTIONS is the cost of one idle connection. Prints one line per mode.
Only loopback traffic; the server is stopped at the end.
"""
import re
import socket
import ssl
import subprocess
import sys
import time

HEALTH = b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def start(bin_path, extra):
    p = subprocess.Popen(
        [bin_path, "serve", "--memory", "--threads", "1", "--listen", "127.0.0.1:0",
         "--max-connections", "4096", "--per-ip-exempt", "127.0.0.0/8",
         "--log-level", "info", *extra],
        stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 15
    log = ""
    while time.time() < deadline:
        line = p.stderr.readline()
        log += line
        m = re.search(r"listening on (https?)://127\.0\.0\.1:(\d+)", line)
        if m:
            return p, int(m.group(2))
    p.kill()
    raise RuntimeError("server did not start: " + log)


def one(port, ctx):
    s = socket.create_connection(("127.0.0.1", port))
    if ctx is not None:
        s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    s.sendall(HEALTH)
    got = b""
    while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"}"):
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    assert got.startswith(b"HTTP/1.1 200"), got[:80]
    return s


def measure(bin_path, extra, ctx, n):
    p, port = start(bin_path, extra)
    try:
        for _ in range(20):
            one(port, ctx).close()
        time.sleep(0.5)
        idle = rss_kib(p.pid)
        conns = [one(port, ctx) for _ in range(n)]
        time.sleep(1.0)
        loaded = rss_kib(p.pid)
        for c in conns:
            c.close()
        return idle, loaded
    finally:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    bin_path, cert_dir = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    ctx = ssl.create_default_context(cafile=f"{cert_dir}/ca.pem")
    tls_args = ["--tls-cert", f"{cert_dir}/cert.pem", "--tls-key", f"{cert_dir}/key.pem"]
    for mode, extra, c in (("http", [], None), ("https", tls_args, ctx)):
        idle, loaded = measure(bin_path, extra, c, n)
        per = (loaded - idle) * 1024 / n
        print(f"{mode}: idle RSS {idle} KiB; {n} idle connections: RSS {loaded} KiB, "
              f"{per / 1024:.1f} KiB per connection")


if __name__ == "__main__":
    main()
