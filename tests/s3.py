"""A real S3-compatible server on 127.0.0.1 for the tests: moto in server mode (`moto_server`), started as a
subprocess on a free port and stopped at the end.

    with MotoServer() as server:
        server.endpoint             # http://127.0.0.1:<port>
        server.env                  # AWS_* variables for regime.objectstore (credentials made up per server)
        server.make_bucket("name")

The `moto_server` program is $REGIME_TEST_MOTO_SERVER, else the one of `.venv-s3` (`make s3server`, which `make test`
runs: moto[server] pinned in requirements-s3server.txt, in a venv of its own), else one beside this Python; not one
found on PATH, which may be another moto version (moto 5.2.1 fails CompleteMultipartUpload of
pyarrow's uploads where 5.2.6 does not). Without it the tests that need it are skipped, saying so (in CI: fail).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def moto_server_program() -> str | None:
    given = os.environ.get("REGIME_TEST_MOTO_SERVER")
    if given:
        return given if Path(given).is_file() else None
    for candidate in (PROJECT / ".venv-s3" / "bin" / "moto_server", Path(sys.executable).with_name("moto_server")):
        if candidate.is_file():
            return str(candidate)
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    def __init__(self, program: str | None = None):
        self.program = program or moto_server_program()
        if not self.program:
            raise FileNotFoundError("moto_server not found: install moto[server] or set REGIME_TEST_MOTO_SERVER")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        # made up here, never written in a file: what the tests check no log or error message repeats
        self.env = {"AWS_ACCESS_KEY_ID": "AKTEST" + secrets.token_hex(7).upper(),
                    "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
                    "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": "us-east-1"}
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> MotoServer:
        self.process = subprocess.Popen([self.program, "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError(f"moto_server did not answer on {self.endpoint}") from None
                time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def filesystem(self, **options):
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(access_key=self.env["AWS_ACCESS_KEY_ID"],
                                 secret_key=self.env["AWS_SECRET_ACCESS_KEY"], region="us-east-1",
                                 endpoint_override=f"127.0.0.1:{self.port}", scheme="http", **options)

    def make_bucket(self, name: str) -> str:
        self.filesystem(allow_bucket_creation=True).create_dir(name)
        return name
