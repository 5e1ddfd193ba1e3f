"""The websocket's write path: a ping from simple-websocket's reader thread never lands inside one
of our frames while that frame is still going out."""

from __future__ import annotations

import socket
import threading
import time

from app.stream import OneWriterSocket


def read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(min(65536, size - got))
        assert chunk, "connection closed early"
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def test_a_ping_waits_for_the_frame_that_is_half_out():
    ours, viewer = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    viewer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    wrapped = OneWriterSocket(ours)
    frame, ping = b"F" * 1_000_000, b"<ping>"
    sender = threading.Thread(target=wrapped.sendall, args=(frame,))
    sender.start()
    time.sleep(0.2)  # the frame now fills both buffers; its sendall waits for the viewer to read
    pinger = threading.Thread(target=wrapped.send, args=(ping,))
    pinger.start()
    time.sleep(0.2)  # give the ping every chance to get in first
    received = read_exactly(viewer, len(frame) + len(ping))
    sender.join(5)
    pinger.join(5)
    assert received == frame + ping
    ours.close()
    viewer.close()


def test_everything_else_reaches_the_real_socket():
    ours, viewer = socket.socketpair()
    wrapped = OneWriterSocket(ours)
    assert wrapped.fileno() == ours.fileno()
    wrapped.settimeout(2.5)
    assert ours.gettimeout() == 2.5
    assert wrapped.send(b"hello") == 5 and viewer.recv(5) == b"hello"
    ours.close()
    viewer.close()
