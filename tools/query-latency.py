#!/usr/bin/env python3
"""Query latency as a plain client sees it: one keep-alive connection, a statistics query for
8 events (E1..E8) every 2 ms for 6 s, read key `ka`; prints p50/p99/max.

    tools/query-latency.py PORT [past]     # `past`: dateTime 364 days back

A cross-check of headcount-loadgen's query figures, whose own threads share the machine's
cores (its spinning sender can add ~0.4 ms at p50 on 2 cores). Run it beside a feed load.
"""
import socket, time, sys
port = int(sys.argv[1]); past = sys.argv[2] if len(sys.argv) > 2 else None
import datetime
def iso(t): return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
s = socket.create_connection(("127.0.0.1", port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
lat = []
end = time.time() + 6
while time.time() < end:
    t0 = time.time() - (364*86400 if past else 0)
    q = "&".join("eventIds=E%d" % i for i in range(1, 9))
    req = ("GET /v1/event-statistics?%s&dateTime=%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ka\r\n\r\n" % (q, iso(t0))).encode()
    t = time.perf_counter(); s.sendall(req); buf = b""
    while True:
        buf += s.recv(65536)
        if b"\r\n\r\n" in buf:
            head, _, body = buf.partition(b"\r\n\r\n")
            cl = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
            if len(body) >= cl: break
    lat.append(time.perf_counter() - t); status = head.split(b" ")[1]
    time.sleep(0.002)
lat.sort(); n = len(lat)
print("status %s n %d p50 %.3f ms p99 %.3f ms max %.3f ms" % (status.decode(), n, lat[n//2]*1e3, lat[int(n*0.99)]*1e3, lat[-1]*1e3))
