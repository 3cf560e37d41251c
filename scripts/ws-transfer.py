#!/usr/bin/env python3
"""Runs one scp_transfer through a Pink-Page daemon and prints its duration.

Usage: PINKPAGE_TOKEN=ppt_... ws-transfer.py PORT TRANSFER_NAME
A minimal WebSocket client (stdlib only): signs in with the API token in
$PINKPAGE_TOKEN (sent as `Authorization: Bearer`; taken from the
environment so it never shows in a process list), takes the session lock,
sends scp_transfer, answers pings, waits for scp_complete, prints
"<seconds> <bytes> <files>" measured by this client (request sent to
scp_complete received). Exits 1 on a refused upgrade or an error frame.
"""
import base64, json, os, socket, struct, sys, time


def send_frame(sock, opcode, payload):
    mask = os.urandom(4)
    header = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        header += bytes([0x80 | n])
    elif n < 65536:
        header += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        header += bytes([0x80 | 127]) + struct.pack(">Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(header + mask + masked)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


def recv_json(sock):
    while True:
        b0, b1 = recv_exact(sock, 2)
        opcode, n = b0 & 0x0F, b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", recv_exact(sock, 2))[0]
        elif n == 127:
            n = struct.unpack(">Q", recv_exact(sock, 8))[0]
        payload = recv_exact(sock, n)
        if opcode == 0x9:
            send_frame(sock, 0xA, payload)
        elif opcode == 0x1:
            return json.loads(payload)
        elif opcode == 0x8:
            raise EOFError("closed by the server")


def main():
    port, name = int(sys.argv[1]), sys.argv[2]
    token = os.environ.get("PINKPAGE_TOKEN")
    if not token:
        sys.exit("ws-transfer.py: set PINKPAGE_TOKEN to an API token (pinkpage token create)")
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws/v1/stub HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            sys.exit("ws-transfer.py: the daemon closed the connection during the upgrade")
        head += chunk
    status = head.split(b"\r\n")[0].decode(errors="replace")
    if " 101 " not in status:
        # the daemon's answer, never our request (which holds the token)
        sys.exit(f"ws-transfer.py: upgrade refused: {status}")
    welcome = recv_json(sock)
    if welcome.get("type") != "welcome":
        sys.exit(f"ws-transfer.py: expected a welcome, got {json.dumps(welcome)}")
    send_frame(sock, 0x1, json.dumps({"type": "start_session"}).encode())
    while True:
        f = recv_json(sock)
        if f["type"] == "session_started":
            break
        if f["type"] == "error":
            print(json.dumps(f), file=sys.stderr)
            sys.exit(1)
    t0 = time.monotonic()
    send_frame(sock, 0x1, json.dumps({"type": "scp_transfer", "transfer_name": name}).encode())
    while True:
        f = recv_json(sock)
        if f["type"] == "scp_complete":
            dt = time.monotonic() - t0
            print(f"{dt:.3f} {f['bytes']} {len(f['files'])}")
            break
        if f["type"] == "error":
            print(json.dumps(f), file=sys.stderr)
            sys.exit(1)
    send_frame(sock, 0x1, json.dumps({"type": "end_session"}).encode())
    sock.close()


if __name__ == "__main__":
    main()
