#!/usr/bin/env python3
"""Opens N keep-alive connections to host:port, makes one request on each,
then holds them idle until killed. Prints "ready <n>" once all are open."""
import socket
import sys
import time

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
path = sys.argv[4] if len(sys.argv) > 4 else "/"
request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
conns = []
for _ in range(n):
    s = socket.create_connection((host, port))
    s.sendall(request)
    conns.append(s)
# Read each answer so the server sees an idle keep-alive connection.
for s in conns:
    s.settimeout(10)
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
ok = sum(1 for s in conns if s.fileno() != -1)
print(f"ready {ok}", flush=True)
while True:
    time.sleep(3600)
