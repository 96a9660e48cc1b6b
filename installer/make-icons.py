#!/usr/bin/env python3
"""Draws the phone app's PNG icons (assets/icon-192.png, icon-512.png): the
blue rounded square with a white "T" of assets/icon.svg, without any image
library. Run from the repository root after changing the design."""
import struct
import zlib


def png(size):
    scale = size / 64
    rows = []
    for y in range(size):
        row = bytearray([0])
        for x in range(size):
            u, v = x / scale, y / scale
            corner = min(u, 64 - u, v, 64 - v)
            inside = True
            if corner < 14:
                cu = 14 if u < 14 else 50 if u > 50 else u
                cv = 14 if v < 14 else 50 if v > 50 else v
                inside = (u - cu) ** 2 + (v - cv) ** 2 <= 14 ** 2
            t = (16 <= u < 48 and 22 <= v < 28) or (29 <= u < 35 and 28 <= v < 48)
            if not inside:
                row += bytes([0, 0, 0, 0])
            elif t:
                row += bytes([255, 255, 255, 255])
            else:
                row += bytes([0x1B, 0x6E, 0xF3, 255])
        rows.append(bytes(row))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")


for size in (192, 512):
    with open(f"assets/icon-{size}.png", "wb") as f:
        f.write(png(size))
