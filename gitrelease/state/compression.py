"""The compressed byte streams under an archive's tar: parallel gzip, zstd, or none.

`archive` writes and reads the tar; this is only what turns its bytes into the compressed
bytes on disk and back. Both codecs use every core while writing, and neither holds more
than a few blocks in memory.
"""

from __future__ import annotations

import gzip
import io
import os
import queue
import threading
from collections import deque
from concurrent.futures import Future
from contextlib import suppress
from typing import IO, Any

__all__ = ["CHUNK", "DecodeAhead", "ParallelGzip", "compressor", "decompressor", "end_frame"]

CHUNK = 1024 * 1024
_GZIP_BLOCK = CHUNK  # compressed apart, a 1 MiB block loses ~0.1% against one stream


class ParallelGzip(io.RawIOBase):
    """gzip the way pigz writes it: the stream cut into blocks, each compressed on a core of its
    own into a gzip member; members one after another are one gzip file (RFC 1952, 2.2), which
    gzip, tar -z and Python read as they read any other. zlib lets go of the GIL while it
    works, so the blocks really are compressed side by side, and the event loop keeps its turn.
    Memory is bounded: at most `workers + 1` blocks are in flight."""

    def __init__(self, sink: IO[bytes], level: int, workers: int | None = None) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._sink = sink
        self._level = level
        self._workers = max(1, workers or os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="gzip")
        self._pending: deque[Future[bytes]] = deque()
        self._buffer = bytearray()
        self._members = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buffer += data
        while len(self._buffer) >= _GZIP_BLOCK:
            self._submit(bytes(self._buffer[:_GZIP_BLOCK]))
            del self._buffer[:_GZIP_BLOCK]
        return len(memoryview(data))

    def _submit(self, block: bytes) -> None:
        self._pending.append(self._pool.submit(gzip.compress, block, self._level, mtime=0))
        self._members += 1
        while len(self._pending) > self._workers:
            self._sink.write(self._pending.popleft().result())

    def end_member(self) -> None:
        """Compress what is buffered as a member of its own and write out every member: what
        is written next starts a new one."""
        if self._buffer:
            self._submit(bytes(self._buffer))
            self._buffer.clear()
        while self._pending:
            self._sink.write(self._pending.popleft().result())

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._buffer or not self._members:  # an empty stream is still one member
                self._submit(bytes(self._buffer))
                self._buffer.clear()
            while self._pending:
                self._sink.write(self._pending.popleft().result())
        finally:
            self.abort()
            super().close()

    def abort(self) -> None:
        """Stop without writing what is left: pending blocks are dropped, the workers end,
        and the stream is closed (a later `close`, the garbage collector's included, does
        nothing)."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._buffer.clear()
        self._pool.shutdown(wait=True)
        super().close()

    def __del__(self) -> None:
        # Never flush from the garbage collector: it may run inside another executor's
        # submit, which holds concurrent.futures' global lock; a submit here would wait on
        # that lock for ever. A stream nobody closed is an abandoned write: dropped.
        if not self.closed:
            self._pending.clear()
            self._pool.shutdown(wait=False, cancel_futures=True)
            io.RawIOBase.close(self)


def compressor(sink: IO[bytes], compression: str, level: int) -> IO[bytes]:
    """What the tar is written into: `sink` itself when `compression` is "none"."""
    if compression == "gzip":
        return ParallelGzip(sink, level)  # type: ignore[return-value]
    if compression == "zstd":
        import zstandard

        # threads=-1: one worker per core, as `zstd -T0` does.
        return zstandard.ZstdCompressor(level=level, threads=-1).stream_writer(
            sink, closefd=False, write_size=CHUNK)
    return sink


def end_frame(stream: IO[bytes], compression: str) -> None:
    """End the compressed frame (a gzip member, a zstd frame) here and write it out, so that
    what is written next can be decoded from where it starts in the file, without what came
    before (`archive.read_member`)."""
    if compression == "gzip":
        stream.end_member()  # type: ignore[attr-defined]
    elif compression == "zstd":
        import zstandard

        stream.flush(zstandard.FLUSH_FRAME)  # type: ignore[call-arg]


def decompressor(source: IO[bytes], compression: str) -> IO[bytes]:
    if compression == "gzip":
        return gzip.GzipFile(fileobj=source, mode="rb")
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(
            source, read_across_frames=True, closefd=False, read_size=CHUNK)
    return source


class DecodeAhead(io.RawIOBase):
    """A decompressed stream read ahead by a thread of its own, as `tar -I zstd` runs its
    decoder in a process of its own: while the reader hashes and writes one MiB, the next is
    being decoded (zstd and zlib let go of the GIL while they work). At most `depth` chunks
    wait in memory. What the decoder raises is raised to the reader, as it was raised.

    `stop()` ends the thread (the reader then owns what is under the decoder again); it is
    idempotent and is called by `close()`."""

    def __init__(self, stream: IO[bytes], depth: int = 4) -> None:
        self._stream = stream
        self._chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(depth)
        self._stopping = threading.Event()
        self._current = memoryview(b"")
        self._ended = False
        self._thread = threading.Thread(target=self._decode, name="decode-ahead", daemon=True)
        self._thread.start()

    def readable(self) -> bool:
        return True

    def _put(self, item: bytes | BaseException | None) -> bool:
        while not self._stopping.is_set():
            try:
                self._chunks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _decode(self) -> None:
        try:
            while not self._stopping.is_set():
                chunk = self._stream.read(CHUNK)
                if not chunk:
                    self._put(None)
                    return
                if not self._put(chunk):
                    return
        except BaseException as exc:  # handed to the reader, who raises it
            self._put(exc)

    def readinto(self, buffer: Any) -> int:
        while not self._current and not self._ended:
            item = self._chunks.get()
            if item is None:
                self._ended = True
            elif isinstance(item, BaseException):
                self._ended = True
                raise item
            else:
                self._current = memoryview(item)
        count = min(len(buffer), len(self._current))
        buffer[:count] = self._current[:count]
        self._current = self._current[count:]
        return count

    def stop(self) -> None:
        self._stopping.set()
        while self._thread.is_alive():
            # A decoder waiting on a full queue sees the stop once it can put.
            with suppress(queue.Empty):
                self._chunks.get(timeout=0.05)
        self._ended = True

    def close(self) -> None:
        if not self.closed:
            self.stop()
        super().close()
