"""Measure gzip (stdlib) vs zstandard on real-shaped Claude Code transcripts.

The transcript is built from ``tests/helpers/cachegen.record()`` records, made realistic: random UUIDs and
parent links, ISO timestamps a few seconds apart, user prompts, assistant prose, tool_use inputs and
tool_result payloads that are slices of real source text (the stdlib's own .py files, which is what
Claude Code reads and writes most), plus usage blocks. Every codec compresses the same bytes.

    python benchmarks/archive_compression.py [--mb 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import sysconfig
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers.cachegen import record  # noqa: E402

WORDS = [
    "the",
    "function",
    "returns",
    "a",
    "list",
    "of",
    "sessions",
    "that",
    "expired",
    "before",
    "now",
    "so",
    "we",
    "keep",
    "the",
    "newest",
    "and",
    "archive",
    "the",
    "rest",
    "while",
    "the",
    "audit",
    "log",
    "records",
    "every",
    "action",
    "with",
    "its",
    "hash",
    "chain",
    "fix",
    "test",
    "error",
    "path",
    "config",
    "retention",
    "window",
    "claude",
    "code",
    "transcript",
    "project",
    "file",
    "directory",
]


def corpus() -> list[str]:
    src = Path(sysconfig.get_paths()["stdlib"])
    texts = []
    for p in sorted(src.glob("*.py"))[:200]:
        try:
            texts.append(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
    return texts


def transcript(target: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    texts = corpus()
    sid = str(uuid.UUID(int=rng.getrandbits(128)))
    cwd = "/home/dev/src/project-1"
    out: list[bytes] = []
    size = 0
    t = 1_780_000_000.0
    prev = None
    i = 0
    while size < target:
        kind = rng.choice(["user", "assistant", "assistant", "tool"])
        t += rng.uniform(1, 40)
        if kind == "user":
            content: object = " ".join(rng.choices(WORDS, k=rng.randint(5, 80)))
        elif kind == "assistant":
            content = [
                {"type": "text", "text": " ".join(rng.choices(WORDS, k=rng.randint(20, 300)))},
                {
                    "type": "tool_use",
                    "id": f"toolu_{rng.getrandbits(64):016x}",
                    "name": "Read",
                    "input": {"file_path": f"{cwd}/src/mod{rng.randint(0, 99)}.py"},
                },
            ]
        else:
            text = rng.choice(texts)
            a = rng.randrange(0, max(1, len(text) - 100))
            content = [
                {
                    "type": "tool_result",
                    "tool_use_id": f"toolu_{rng.getrandbits(64):016x}",
                    "content": text[a : a + rng.randint(200, 20000)],
                }
            ]
        rec = record(sid, cwd, t, i, "user" if kind in ("user", "tool") else "assistant")
        rec["uuid"] = str(uuid.UUID(int=rng.getrandbits(128)))
        rec["parentUuid"] = prev
        rec["message"]["content"] = content
        if kind == "assistant":
            rec["requestId"] = f"req_{rng.getrandbits(96):024x}"
            rec["message"]["usage"] = {
                "input_tokens": rng.randint(1, 9000),
                "output_tokens": rng.randint(1, 4000),
                "cache_read_input_tokens": rng.randint(0, 90000),
            }
        prev = rec["uuid"]
        line = (json.dumps(rec) + "\n").encode()
        out.append(line)
        size += len(line)
        i += 1
    return b"".join(out)


def best(fn, repeat: int) -> tuple[float, bytes]:
    times = []
    res = b""
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t0)
    return min(times), res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    data = transcript(int(args.mb * 1024 * 1024))
    mb = len(data) / 1e6
    lines = data.count(b"\n")
    print(f"input: {len(data):,} bytes of JSONL ({lines:,} records)")
    codecs: list[tuple[str, object, object]] = []
    for lvl in (1, 6, 9):
        codecs.append(
            (f"gzip -{lvl}", lambda lvl=lvl: gzip.compress(data, compresslevel=lvl, mtime=0), gzip.decompress)
        )
    try:
        import zstandard
    except ImportError:
        print("zstandard not installed: pip install zstandard")
    else:
        for lvl in (1, 3, 6, 10, 19):
            c = zstandard.ZstdCompressor(level=lvl, write_checksum=True)
            codecs.append((f"zstd -{lvl}", lambda c=c: c.compress(data), zstandard.ZstdDecompressor().decompress))
    print(f"{'codec':10} {'ratio':>6} {'out MB':>8} {'comp MB/s':>10} {'decomp MB/s':>12}")
    for name, comp, decomp in codecs:
        ct, out = best(comp, args.repeat)
        dt, back = best(lambda out=out, decomp=decomp: decomp(out), args.repeat)
        assert back == data
        print(f"{name:10} {len(data) / len(out):6.2f} {len(out) / 1e6:8.2f} {mb / ct:10.1f} {mb / dt:12.1f}")


if __name__ == "__main__":
    main()
