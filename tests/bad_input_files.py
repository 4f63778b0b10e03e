"""bad_input_files.py DIR: writes the hostile and broken inputs of tests/bad_input_test.sh into
DIR (standard library only, deterministic). Each file is small; the point of most is what its
header claims."""
import math
import os
import struct
import sys
import zlib


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)


def png(width, height, idat, color_type=2):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def wav(samples, rate=16000, channels=1, float32=True, data_bytes=None):
    fmt_tag, width = (3, 4) if float32 else (1, 2)
    data = b"".join(struct.pack("<f" if float32 else "<h", s) for s in samples)
    n = len(data) if data_bytes is None else data_bytes
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * channels * width, channels * width, 8 * width)
    return (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + n) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt))
            + fmt + b"data" + struct.pack("<I", n) + data)


def main(d):
    os.makedirs(d, exist_ok=True)

    def put(name, data):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)

    ok_png = png(16, 16, zlib.compress(b"".join(b"\x00" + b"\x80\x10\x10" * 16 for _ in range(16))))
    put("empty.png", b"")
    put("truncated.png", ok_png[: len(ok_png) // 2])
    put("huge-header.png", png(100000, 100000, zlib.compress(b"\x00" * 64)))
    # a decompression bomb: 4000 x 4000 (within the pixel limit) whose 48 MB of pixels compress
    # to ~50 KB, and a 8192 x 8192 one over the pixel limit
    row = b"\x00" + b"\x00" * (4000 * 3)
    co = zlib.compressobj(9)
    bomb = b"".join(co.compress(row) for _ in range(4000)) + co.flush()
    put("bomb-4000.png", png(4000, 4000, bomb))
    put("bomb-8192.png", png(8192, 8192, zlib.compress(b"\x00" * 1024)))
    put("page.html", b"<!doctype html><html><body>not a model</body></html>\n")
    put("not-an-image.jpg", b"\xff\xd8\xff\xe0 definitely not a jpeg body" * 3)
    # audio
    put("empty.wav", b"")
    put("zero-samples.wav", wav([]))
    put("nan.wav", wav([0.1, float("nan"), 0.2] * 400))
    put("inf.wav", wav([0.1, float("inf")] * 400))
    tone = [0.3 * math.sin(2 * math.pi * 440 * i / 16000) for i in range(8000)]
    full = wav(tone)
    put("truncated.wav", full[: 44 + 10])
    # a header that claims 10 hours of 16 kHz float audio (the data is 1,000 samples)
    ten_hours = 10 * 3600 * 16000 * 4
    put("ten-hours.wav", wav(tone[:1000], data_bytes=min(ten_hours, 0xFFFFFFFF - 64)))
    put("text.wav", b"RIFF....WAVEthis is text, not audio\n" * 4)
    # text
    put("invalid-utf8.txt", b"what color is the \xff\xfe circle?")


if __name__ == "__main__":
    main(sys.argv[1])
