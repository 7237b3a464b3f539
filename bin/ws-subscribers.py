#!/usr/bin/env python3
"""N WebSocket subscribers to castle serve's /v1/stream, for bin/bench's fan-out figure.

Each connection subscribes to the trades and the book of one symbol (round robin over --symbols) and
reads everything it is sent. Prints "subscribed N" on stdout once every connection has its answers,
then, on SIGTERM or SIGINT, "messages M bytes B closed C" (C: connections the server closed, e.g. as
slow consumers) and exits. The standard library only: asyncio streams and the WebSocket framing of
RFC 6455 that a client needs (masked text frames out; unmasked frames in).
"""
import argparse
import asyncio
import base64
import json
import os
import signal
import struct

counts = {"messages": 0, "bytes": 0, "closed": 0}


def frame(text):
    data = text.encode()
    mask = os.urandom(4)
    if len(data) < 126:
        header = bytes([0x81, 0x80 | len(data)])
    else:
        header = bytes([0x81, 0x80 | 126]) + struct.pack(">H", len(data))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def read_frame(reader):
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack(">H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack(">Q", await reader.readexactly(8))
    payload = await reader.readexactly(length)
    return first & 0x0F, payload


async def subscriber(host, port, symbol, ready):
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /v1/stream HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    status = await reader.readuntil(b"\r\n\r\n")
    if b" 101 " not in status.split(b"\r\n")[0]:
        raise SystemExit(f"ws-subscribers: upgrade refused: {status[:80]!r}")
    for channel in ("trades", "book"):
        writer.write(frame(json.dumps({"op": "subscribe", "channel": channel, "symbol": symbol})))
    answers = 0
    try:
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == 0x8:
                counts["closed"] += 1
                return
            if opcode == 0x9:  # ping: answer, or the server closes us as dead
                writer.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
                continue
            if answers < 2 and b'"op":"subscribed"' in payload:
                answers += 1
                if answers == 2:
                    ready.release()
                continue
            counts["messages"] += 1
            counts["bytes"] += len(payload)
    except (asyncio.IncompleteReadError, ConnectionError):
        counts["closed"] += 1


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--symbols", default="S0,S1,S2,S3")
    arguments = parser.parse_args()
    symbols = arguments.symbols.split(",")
    ready = asyncio.Semaphore(0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [
        asyncio.create_task(subscriber(arguments.host, arguments.port, symbols[i % len(symbols)], ready))
        for i in range(arguments.count)
    ]
    for _ in range(arguments.count):
        await ready.acquire()
    print(f"subscribed {arguments.count}", flush=True)
    await stop.wait()
    print(f"messages {counts['messages']} bytes {counts['bytes']} closed {counts['closed']}", flush=True)
    for task in tasks:
        task.cancel()


asyncio.run(main())
