#!/usr/bin/env python3
"""ssh ProxyCommand that adds latency: delay-proxy.py ONE_WAY_MS HOST PORT.

The kernel here has no netem, so round trips are simulated in user space: every chunk is delivered
ONE_WAY_MS after it was read, in each direction, and the TCP connect is charged one round trip.
Loopback only; it stops when either side closes."""
import socket, sys, threading, time, heapq, os

delay = float(sys.argv[1]) / 1000.0
host, port = sys.argv[2], int(sys.argv[3])
if host not in ("127.0.0.1", "localhost", "::1"):
    sys.exit("delay-proxy: loopback only")
time.sleep(2 * delay)  # the TCP handshake's round trip
sock = socket.create_connection((host, port))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

def pump(read, write, close):
    queue, cond, done = [], threading.Condition(), [False]
    def reader():
        while True:
            data = read()
            with cond:
                if not data:
                    done[0] = True
                else:
                    queue.append((time.monotonic() + delay, data))
                cond.notify()
            if not data:
                return
    threading.Thread(target=reader, daemon=True).start()
    while True:
        with cond:
            while not queue and not done[0]:
                cond.wait()
            if not queue and done[0]:
                close()
                return
            due, data = queue[0]
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        with cond:
            queue.pop(0)
        write(data)

IN_FD, OUT_FD = 0, 1
def to_server():
    pump(lambda: os.read(IN_FD, 65536), sock.sendall, lambda: sock.shutdown(socket.SHUT_WR))
def to_client():
    def w(d):
        view = memoryview(d)
        while view:
            n = os.write(OUT_FD, view)
            view = view[n:]
    pump(lambda: sock.recv(65536), w, lambda: os.close(OUT_FD))
t = threading.Thread(target=to_server, daemon=True)
t.start()
to_client()
