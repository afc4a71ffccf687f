"""File parsing (bytes -> pages of text) in a worker process bounded in CPU time, memory and wall-clock time.

A hostile file can make a parser spin or allocate for hours whatever its size on disk, so ingestion
parses in one long-lived child process (starting one costs about a second: Python plus the parsers'
imports, far too much per small file; ``acquire``/``release`` keep it for the next run in the same
process) and replaces it only when it dies or hits a limit:

- CPU: before each file the worker lowers its own soft ``RLIMIT_CPU`` to the CPU it has used plus the
  allowance (``JASPER_INGEST_PARSE_CPU_S``); past it the kernel ends it with ``SIGXCPU``, even inside C code.
- memory: the worker's address space is capped (``RLIMIT_AS``, ``JASPER_INGEST_PARSE_MEMORY_MB``); an
  allocation over it fails (``MemoryError``) and the worker reports it and exits.
- wall clock: the parent waits at most ``JASPER_INGEST_PARSE_WALL_S`` for the answer, then kills the worker.

Each such file is refused with the limit it hit ("parsing took more than 60 s of CPU: ..."), and the next
file gets a fresh worker. Requests cross the pipe as plain data: the loader's module and name, the
file's path and bytes, the limits. Answers come back as JSON (never pickle: the worker handles hostile
files, so nothing it sends may execute code when read): the content as lists of str and int (rebuilt
into ``Content`` here), or an error message.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from jasper_rag.config import Settings
from jasper_rag.ingest.loaders import Content, FaqContent, ImageContent, LoadError, LoadLimits, Page, TextContent

log = logging.getLogger(__name__)


class UnexpectedParseError(Exception):
    """A loader raised something other than ``LoadError`` in the worker; the message is ``Type: message``."""


@dataclass(frozen=True)
class ParseLimits:
    """What parsing one file may cost in the worker."""

    cpu_seconds: int
    memory_bytes: int
    wall_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ParseLimits:
        return cls(settings.ingest_parse_cpu_s, settings.ingest_parse_memory_mb * 2**20, settings.ingest_parse_wall_s)


def to_plain(content: Content) -> tuple:
    """Content as tuples of str and int, for the pipe (JSON turns the tuples into lists)."""
    if isinstance(content, TextContent):
        return ("text", [(page.number, page.text, page.heading, page.ocr) for page in content.pages])
    if isinstance(content, FaqContent):
        return ("faq", [(str(q), str(a)) for q, a in content.pairs])
    if isinstance(content, ImageContent):
        text = [(page.number, page.text, page.heading, page.ocr) for page in content.text]
        return ("image", (int(content.width), int(content.height), str(content.image_format), text))
    raise TypeError(f"not loaded content: {type(content).__name__}")


def from_plain(plain: tuple | list) -> Content:
    kind, body = plain
    if kind == "text":
        return TextContent([Page(number, text, heading, bool(ocr)) for number, text, heading, ocr in body])
    if kind == "faq":
        return FaqContent([(question, answer) for question, answer in body])
    if kind == "image":
        width, height, image_format, text = body
        return ImageContent(width, height, image_format, tuple(Page(n, t, h, bool(o)) for n, t, h, o in text))
    raise ValueError(f"unknown content kind {kind!r}")


MAX_REASON_CHARS = 1000


def _answer(connection: Connection, reply: tuple) -> None:
    """Send a reply to the parent as JSON."""
    connection.send_bytes(json.dumps(reply).encode())


def _read_answer(connection: Connection) -> list:
    """A reply from the worker (JSON only: nothing the worker sends can run code here)."""
    return json.loads(connection.recv_bytes())


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _serve(requests: Connection, answers: Connection, memory_bytes: int) -> None:
    """The worker: answer load requests until the pipe closes."""
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)  # over the CPU allowance: the kernel ends the process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a process ended for its limits leaves no core file
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    while True:
        try:
            request = requests.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        module, name, path, data, limits, cpu_seconds = request
        _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = int(_cpu_used()) + 1 + cpu_seconds  # whole seconds; +1: what this second already holds
        if cpu_hard != resource.RLIM_INFINITY:
            soft = min(soft, cpu_hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, cpu_hard))
        try:
            loader = getattr(importlib.import_module(module), name)
            reply = ("ok", to_plain(loader(Path(path), data, LoadLimits(*limits))))
        except LoadError as err:
            reply = ("refused", str(err))
        except MemoryError:
            _answer(answers, ("memory", ""))
            return  # a failed allocation may leave the parsers' state broken: start afresh
        except Exception as err:  # a loader bug or a hostile file: its reason, and keep serving
            reply = ("unexpected", f"{type(err).__name__}: {err}"[:MAX_REASON_CHARS])
        del data
        try:
            _answer(answers, reply)
        except MemoryError:  # the answer itself does not fit (encoded beside the content)
            _answer(answers, ("memory", ""))
            return


class ParseWorker:
    """Runs loaders in a child process under ``ParseLimits``; use as a context manager (or ``close()``)."""

    def __init__(self, limits: ParseLimits) -> None:
        self.limits = limits
        self.process: subprocess.Popen | None = None
        self.sender: Connection | None = None
        self.connection: Connection | None = None
        self.started = 0  # processes started (for the report and the tests)

    def __enter__(self) -> ParseWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        """A fresh worker: ``python -m jasper_rag.ingest.worker`` talking over two pipes of its own (its
        stdout and stderr stay free for anything a parser prints); it gets this process's ``sys.path``."""
        to_child, from_child = os.pipe(), os.pipe()
        command = [sys.executable, "-m", __name__, str(to_child[0]), str(from_child[1])]
        try:
            self.process = subprocess.Popen(
                command, pass_fds=(to_child[0], from_child[1]), stdin=subprocess.DEVNULL, close_fds=True
            )
        finally:
            os.close(to_child[0])
            os.close(from_child[1])
        self.sender = Connection(to_child[1], readable=False)
        self.connection = Connection(from_child[0], writable=False)
        self.sender.send((list(sys.path), self.limits.memory_bytes))
        self.started += 1

    def load(self, loader: Callable[..., Content], path: Path, data: bytes, limits: LoadLimits) -> Content:
        """``loader(path, data, limits)`` run in the worker; ``LoadError`` with the reason when it refuses
        the file or the file hits a limit (the worker is then replaced on the next call)."""
        if self.process is None or self.process.poll() is not None:
            self._stop()
            self._start()
        request = (loader.__module__, loader.__qualname__, str(path), data, astuple(limits), self.limits.cpu_seconds)
        started = time.perf_counter()
        try:
            self.sender.send(request)
            ready = self.connection.poll(self.limits.wall_seconds)
            reply = _read_answer(self.connection) if ready else None
        except (EOFError, OSError, BrokenPipeError, ValueError):
            reply = "died"
        if reply is None:
            self._stop()
            raise LoadError(f"parsing took more than {self.limits.wall_seconds:g} s (wall clock): stopped")
        if reply == "died":
            code = self._stop()
            raise LoadError(self._death_reason(code, time.perf_counter() - started))
        status, body = reply
        if status == "ok":
            return from_plain(body)
        if status == "memory":
            self._stop()
            raise LoadError(self._memory_reason())
        if status == "refused":
            raise LoadError(body)
        raise UnexpectedParseError(body)  # a loader bug or a hostile file: the pipeline records it

    def _memory_reason(self) -> str:
        return f"parsing needed more than {self.limits.memory_bytes / 2**20:.0f} MiB of memory: stopped"

    def _death_reason(self, code: int | None, seconds: float) -> str:
        if code == -signal.SIGXCPU:
            return f"parsing took more than {self.limits.cpu_seconds} s of CPU: stopped"
        if code in (-signal.SIGSEGV, -signal.SIGKILL, -signal.SIGABRT):
            # a crash or the kernel's OOM killer; under RLIMIT_AS a C parser that cannot allocate crashes
            return f"parsing crashed (signal {-code}; memory limit {self.limits.memory_bytes / 2**20:.0f} MiB)"
        return f"parsing process ended unexpectedly (exit code {code}) after {seconds:.1f} s"

    def _stop(self) -> int | None:
        """End the worker (killed if it does not leave at once); its exit code."""
        for connection in (self.sender, self.connection):
            if connection is not None:
                connection.close()
        self.sender = self.connection = None
        process, self.process = self.process, None
        if process is None:
            return None
        try:
            return process.wait(0.5)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def close(self) -> None:
        """Ask the worker to leave, then make sure it has."""
        if self.sender is not None and self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.sender.send(None)
        self._stop()


IDLE_WORKERS = 2
_idle: list[ParseWorker] = []
_idle_lock = threading.Lock()


def acquire(limits: ParseLimits) -> ParseWorker:
    """A worker for one run: an idle one left by an earlier run in this process (same limits), or a new
    one (started on its first file). Keeps a UI that ingests one upload per run from paying the worker's
    start-up per file."""
    with _idle_lock:
        for number, worker in enumerate(_idle):
            if worker.limits == limits:
                return _idle.pop(number)
    return ParseWorker(limits)


def release(worker: ParseWorker) -> None:
    """Give a worker back after a run: kept idle for the next run (at most ``IDLE_WORKERS``), else closed."""
    if worker.process is not None and worker.process.poll() is None:
        with _idle_lock:
            if len(_idle) < IDLE_WORKERS:
                _idle.append(worker)
                return
    worker.close()


@atexit.register
def close_idle() -> None:
    """Close the idle workers (at exit; they would also leave when this process's end closes their pipe)."""
    with _idle_lock:
        workers, _idle[:] = list(_idle), []
    for worker in workers:
        worker.close()


def main(argv: list[str]) -> None:
    """Worker entry point: ``python -m jasper_rag.ingest.worker <request fd> <answer fd>``."""
    requests = Connection(int(argv[0]), writable=False)
    answers = Connection(int(argv[1]), readable=False)
    path, memory_bytes = requests.recv()
    sys.path[:] = path
    _serve(requests, answers, memory_bytes)


if __name__ == "__main__":
    main(sys.argv[1:])
