#!/usr/bin/env python3
"""Training traffic for a profile-guided build (bench/pgo.sh).

Varied requests over keep-alive connections: plain proxying (GET, HEAD,
POST, PUT, DELETE on changing paths), requests through the WAF route (GET
with query strings, JSON and form bodies of changing size, a share of
attacks that are blocked), and refusals (unknown hosts' paths, bad paths,
oversize headers). The point is a profile of what a gateway does all day,
not of one benchmark request.

    pgo_train.py PORT SECONDS
"""
import json
import random
import socket
import sys
import time

PORT = int(sys.argv[1])
SECONDS = float(sys.argv[2])
WORDS = ("order shipped pending alice bob carol red large small item price "
         "warranty recycled packaging returns customer invoice delivery note").split()
ATTACKS = [
    "1' OR '1'='1", "<script>alert(1)</script>", "../../etc/passwd",
    "; cat /etc/passwd", "1 UNION SELECT password FROM users--",
    "<img src=x onerror=alert(1)>", "${jndi:ldap://x/a}",
]
UAS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "curl/8.5.0", "python-requests/2.31", "okhttp/4.12.0",
]


def words(n):
    return " ".join(random.choice(WORDS) for _ in range(n))


def quote(s):
    out = []
    for b in s.encode():
        c = chr(b)
        out.append(c if c.isalnum() or c in "-._~" else "%%%02X" % b)
    return "".join(out)


def request():
    """One request: (bytes, expect_close)."""
    r = random.random()
    ua = random.choice(UAS)
    headers = [("Host", "127.0.0.1"), ("User-Agent", ua), ("Accept", "application/json")]
    if random.random() < 0.5:
        headers.append(("Authorization", "Bearer " + "x" * random.randint(20, 200)))
    body = b""
    if r < 0.45:  # plain proxying
        method = random.choice(["GET"] * 6 + ["HEAD", "DELETE"])
        path = "/users/%d" % random.randint(1, 10000)
        if random.random() < 0.3:
            path += "?page=%d&sort=%s" % (random.randint(1, 9), random.choice(WORDS))
        if random.random() < 0.2:
            method = random.choice(["POST", "PUT"])
            body = json.dumps({"name": words(2), "n": random.randint(0, 99)}).encode()
            headers.append(("Content-Type", "application/json"))
    elif r < 0.9:  # through the WAF
        attack = random.random() < 0.15
        value = random.choice(ATTACKS) if attack else words(random.randint(1, 4))
        kind = random.random()
        if kind < 0.5:
            method = "GET"
            path = "/waf/orders?status=%s&q=%s&page=%d" % (
                random.choice(WORDS), quote(value), random.randint(1, 50))
        elif kind < 0.85:
            method = "POST"
            path = "/waf/orders"
            items = [{"id": i, "name": words(3), "price": round(random.random() * 100, 2),
                      "tags": [random.choice(WORDS)], "note": value if i == 0 else words(8)}
                     for i in range(random.randint(1, 6))]
            body = json.dumps({"order": "A-%d" % random.randint(1, 9999), "items": items}).encode()
            headers.append(("Content-Type", "application/json"))
        else:
            method = "POST"
            path = "/waf/login"
            body = ("user=%s&password=%s&next=%s" % (
                quote(random.choice(WORDS)), quote(words(2)), quote(value))).encode()
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    else:  # refusals and odd requests
        method = "GET"
        path = random.choice(["/a/../users/1", "/users//2", "/%2e%2e/etc", "/users/%00",
                              "/nope/" + random.choice(WORDS)])
        if random.random() < 0.2:
            headers.append(("X-Forwarded-For", "203.0.113.%d" % random.randint(1, 254)))
    if body:
        headers.append(("Content-Length", str(len(body))))
    head = "%s %s HTTP/1.1\r\n" % (method, path)
    head += "".join("%s: %s\r\n" % h for h in headers) + "\r\n"
    return head.encode() + body, method == "HEAD"


def read_response(sock, buf, is_head):
    """Reads one response; returns (leftover, keep_alive)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return b"", False
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        fields[k.strip().lower()] = v.strip()
    keep = fields.get(b"connection", b"").lower() != b"close"
    if is_head:
        return rest, keep
    if b"content-length" in fields:
        n = int(fields[b"content-length"])
        while len(rest) < n:
            chunk = sock.recv(65536)
            if not chunk:
                return b"", False
            rest += chunk
        return rest[n:], keep
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                return b"", False
            rest += chunk
        return b"", keep
    return b"", False


def main():
    random.seed(7)
    end = time.time() + SECONDS
    sock, buf, sent = None, b"", 0
    while time.time() < end:
        if sock is None:
            sock = socket.create_connection(("127.0.0.1", PORT))
            # A stuck exchange times out (an OSError) and the connection is
            # replaced, so training always ends on time.
            sock.settimeout(5)
            buf = b""
        req, is_head = request()
        try:
            sock.sendall(req)
            buf, keep = read_response(sock, buf, is_head)
        except OSError:
            keep = False
        sent += 1
        if not keep:
            sock.close()
            sock = None
    print("%d training requests" % sent)


if __name__ == "__main__":
    main()
