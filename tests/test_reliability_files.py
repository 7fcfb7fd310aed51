"""Upstream files that are not what a file should be: a mirror entry that is a symbolic link out of the mirror (or
'..' out of it), a broken link, a FIFO or a directory; a file or an HTTP body over the source's size limit; bytes
that would put escape sequences, NULs or a 10 kB line into an error message and so into the failure mail.

Each is refused with a clear SourceError naming the file, and nothing of a refused file reaches raw/ or
quarantine/ (docs/reliability.md, "Upstream files: symlinks, size limits, excerpts")."""

from __future__ import annotations

import os
import resource
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import SAMPLE_LAST, SAMPLE_MIRROR
from regime import pipeline
from regime.config import ConfigError, get_settings
from regime.ingest import IngestError
from regime.sources import cboe, fetch
from regime.sources.errors import EXCERPT_CHARS, FileTooLarge, SourceError, SourceRefused, excerpt
from upstream import Upstream

GOOD = (SAMPLE_MIRROR / "cboe" / "RUT_History.csv").read_bytes()
SECRET = b"root:x:0:0:secret-first-line-of-a-system-file:/root:/bin/bash\n"
HOSTILE = b"\x1b]0;owned\x07\x1b[2J\x1b[31m\x00\x00\x08\x7f" + b"A" * 10_000  # escapes, NULs, a 10 kB line


def files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def ingest_rut(settings) -> str:
    with pytest.raises(IngestError) as err:
        pipeline.ingest("index_prices", SAMPLE_LAST, settings)
    return str(err.value)


@pytest.fixture
def rut_only(monkeypatch, regime_env):
    monkeypatch.setenv("REGIME_INDEXES", "RUT")
    return get_settings()


def assert_nothing_kept(settings) -> None:
    assert files(settings.raw_dir) == []
    assert files(settings.quarantine_dir) == []
    assert not any(settings.lake_dir.rglob("*.parquet"))


def assert_short(text: str) -> None:
    """Printable, one line, no control characters, no long run of quoted bytes."""
    assert all(c.isprintable() for c in text), text[:200]
    assert max(len(run) for run in text.split(" ")) <= EXCERPT_CHARS + 3


# ------------------------------------------------------------------------------------------------ mirror links


def test_a_symlink_out_of_the_mirror_is_refused_unread(tmp_path, mirror, rut_only):
    outside = tmp_path / "system-file"
    outside.write_bytes(SECRET)
    rut = mirror / "cboe" / "RUT_History.csv"
    rut.unlink()
    rut.symlink_to(outside)
    message = ingest_rut(rut_only)
    assert f"cboe: {rut}: cboe/RUT_History.csv leads outside the mirror" in message
    assert "secret-first-line" not in message and "root:x" not in message
    assert_nothing_kept(rut_only)


@pytest.mark.skipif(not Path("/etc/passwd").is_file(), reason="no /etc/passwd on this system")
def test_a_symlink_to_etc_passwd_is_refused_and_not_quoted(mirror, rut_only):
    rut = mirror / "cboe" / "RUT_History.csv"
    rut.unlink()
    rut.symlink_to("/etc/passwd")
    message = ingest_rut(rut_only)
    assert "leads outside the mirror (to /etc/passwd" in message
    first = Path("/etc/passwd").read_text().splitlines()[0]
    assert first not in message
    assert_nothing_kept(rut_only)


def test_dot_dot_out_of_the_mirror_is_refused(tmp_path, mirror):
    (tmp_path / "secret.csv").write_bytes(SECRET)
    with pytest.raises(SourceRefused, match=r"cboe/\.\./\.\./secret\.csv leads outside the mirror"):
        fetch.fetch_mirror(mirror, "cboe", "../../secret.csv", "cboe")


def test_a_symlink_that_stays_inside_the_mirror_is_followed(mirror):
    rut = mirror / "cboe" / "RUT_History.csv"
    rut.rename(mirror / "RUT_copy.csv")
    rut.symlink_to("../RUT_copy.csv")
    fetched = fetch.fetch_mirror(mirror, "cboe", "RUT_History.csv", "cboe")
    assert fetched.data == GOOD and fetched.location == str(rut)


def test_a_symlinked_mirror_folder_is_followed(tmp_path):
    """The mirror itself may be reached through a link (e.g. a mounted volume): the bound is where it resolves."""
    link = tmp_path / "mirror-link"
    link.symlink_to(SAMPLE_MIRROR)
    assert fetch.fetch_mirror(link, "cboe", "RUT_History.csv", "cboe").data == GOOD


def test_a_broken_symlink_fails_the_ingest_and_is_not_skipped_as_absent(mirror, rut_only):
    rut = mirror / "cboe" / "RUT_History.csv"
    rut.unlink()
    rut.symlink_to("RUT_History.csv.gone")
    message = ingest_rut(rut_only)
    assert (f"cboe: {rut}: cboe/RUT_History.csv is a broken symbolic link (it leads to RUT_History.csv.gone, "
            "which does not exist): not read") in message
    assert_nothing_kept(rut_only)


def test_an_absent_file_is_still_missing_upstream_and_skipped(mirror, monkeypatch, regime_env):
    monkeypatch.setenv("REGIME_INDEXES", "RUT,SPX")
    (mirror / "cboe" / "SPX_History.csv").unlink()
    result = pipeline.ingest("index_prices", SAMPLE_LAST, get_settings())
    assert result["missing"] == ["SPX"] and result["rows"] == {"RUT": 1394}


def test_a_symlink_loop_is_refused(mirror):
    rut = mirror / "cboe" / "RUT_History.csv"
    rut.unlink()
    rut.symlink_to("RUT_History.csv")
    with pytest.raises(SourceRefused, match="cboe/RUT_History.csv cannot be resolved"):
        fetch.fetch_mirror(mirror, "cboe", "RUT_History.csv", "cboe")


def test_a_fifo_is_refused_without_blocking(mirror, rut_only):
    rut = mirror / "cboe" / "RUT_History.csv"
    rut.unlink()
    os.mkfifo(rut)  # opening it for reading would wait for a writer for ever
    assert "cboe/RUT_History.csv is a FIFO (named pipe), not a file: not read" in ingest_rut(rut_only)
    assert_nothing_kept(rut_only)


def test_a_directory_is_refused(mirror):
    rut = mirror / "cboe" / "RUT_History.csv"
    rut.unlink()
    rut.mkdir()
    with pytest.raises(SourceRefused, match="cboe/RUT_History.csv is a directory"):
        fetch.fetch_mirror(mirror, "cboe", "RUT_History.csv", "cboe")


# ------------------------------------------------------------------------------------------------ size limits


def test_a_sparse_file_over_the_default_limit_is_refused_before_it_is_read(mirror, rut_only):
    """A 100 MiB sparse file (no disk used) against Cboe's 64 MiB default: refused from its size alone, so peak
    memory does not grow by anything like its size and nothing is copied to raw/ or quarantine/."""
    rut = mirror / "cboe" / "RUT_History.csv"
    os.truncate(rut, 100 * 2**20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    message = ingest_rut(rut_only)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert (f"cboe: {rut}: 104,857,600 bytes (its size in the mirror), over the cboe size limit of 67,108,864 bytes "
            "(64 MiB, REGIME_MAX_FILE_MB): refused, nothing kept") in message
    assert grown < 50 * 1024, f"peak RSS grew by {grown} KiB"
    assert_nothing_kept(rut_only)


def test_the_limit_is_one_setting(mirror, monkeypatch, regime_env):
    """REGIME_MAX_FILE_MB=0.0625 (65,536 bytes) refuses the sample's 82 kB RUT history; the default accepts it."""
    monkeypatch.setenv("REGIME_INDEXES", "RUT")
    assert get_settings().max_file_bytes("cboe") == 64 * 2**20
    assert get_settings().max_file_bytes("occ") == 16 * 2**20
    monkeypatch.setenv("REGIME_MAX_FILE_MB", "0.0625")
    settings = get_settings()
    assert settings.max_file_bytes("cboe") == settings.max_file_bytes("occ") == 65_536
    message = ingest_rut(settings)
    assert f"{len(GOOD):,} bytes (its size in the mirror), over the cboe size limit of 65,536 bytes" in message
    assert_nothing_kept(settings)
    monkeypatch.delenv("REGIME_MAX_FILE_MB")
    assert pipeline.ingest("index_prices", SAMPLE_LAST, get_settings())["rows"] == {"RUT": 1394}


@pytest.mark.parametrize("value", ["0", "-1", "lots", "inf", "nan"])
def test_a_limit_that_is_not_a_positive_size_is_refused(monkeypatch, value):
    monkeypatch.setenv("REGIME_MAX_FILE_MB", value)
    with pytest.raises(ConfigError, match="REGIME_MAX_FILE_MB="):
        get_settings()


def test_http_over_the_limit_by_content_length_is_refused_at_once(monkeypatch, regime_env):
    with Upstream() as up:
        up.route(urlsplit(cboe.url("RUT")).path, GOOD)
        monkeypatch.setenv("REGIME_SOURCE", "live")
        monkeypatch.setenv("REGIME_LIVE_BASE_URL", up.url(""))
        monkeypatch.setenv("REGIME_INDEXES", "RUT")
        monkeypatch.setenv("REGIME_MAX_FILE_MB", "0.0625")
        settings = get_settings()
        message = ingest_rut(settings)
    assert f"{len(GOOD):,} bytes (its Content-Length), over the cboe size limit of 65,536 bytes" in message
    assert len(up.requests) == 1  # not retried
    assert_nothing_kept(settings)


class _Endless:
    """A raw HTTP server that streams a chunked body with no Content-Length and no end (up to CAP bytes), counting
    requests and what it managed to send before the client hung up."""

    CAP = 256 * 2**20

    def __enter__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(20)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/RUT_History.csv"
        self.count, self.sent = 0, 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def _serve(self):
        chunk = b"%x\r\n%s\r\n" % (65536, b"1" * 65536)
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                self.count += 1
                try:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/csv\r\n\r\n")
                    while self.sent < self.CAP:
                        conn.sendall(chunk)
                        self.sent += 65536
                except OSError:
                    pass

    def __exit__(self, *exc):
        self.sock.close()


def test_http_streamed_past_the_limit_is_cut_off_and_not_retried():
    with _Endless() as server, pytest.raises(FileTooLarge) as err:
        fetch.fetch_http(server.url, "RUT_History.csv", "cboe", timeout=5, attempts=3, max_bytes=2**20)
    assert str(err.value) == (f"cboe: {server.url}: more than 1,048,576 bytes (no Content-Length; stopped reading "
                              "past the limit), over the cboe size limit of 1,048,576 bytes (1 MiB, "
                              "REGIME_MAX_FILE_MB): refused, nothing kept")
    assert server.count == 1
    assert server.sent < server.CAP  # the client hung up: it did not read the body to the end


def test_http_within_the_limit_still_lands_whole():
    with Upstream() as up:
        url = up.route("/RUT_History.csv", GOOD)
        assert fetch.fetch_http(url, "RUT_History.csv", "cboe", timeout=5, max_bytes=len(GOOD)).data == GOOD
        with pytest.raises(FileTooLarge, match=f"{len(GOOD):,} bytes"):
            fetch.fetch_http(url, "RUT_History.csv", "cboe", timeout=5, max_bytes=len(GOOD) - 1)


# ------------------------------------------------------------------------------------------------ excerpts


def test_excerpt_is_short_printable_and_one_line():
    said = excerpt(HOSTILE)
    assert said.startswith("?]0;owned??[2J?[31m????AAA") and said.endswith("A...")
    assert len(said) == EXCERPT_CHARS + 3
    assert_short(said)
    assert excerpt(b"No data found, symbol may be delisted") == "No data found, symbol may be delisted"
    assert excerpt("\u202eevil\u202c") == "?evil?"  # bidi overrides
    assert excerpt(b"\xff\xfe") == "\ufffd\ufffd"


def test_a_hostile_header_line_is_quoted_short_and_sanitised(mirror, rut_only):
    """A parser error quoting a 10 kB line of escape sequences and NULs: the error (and so the mail and the
    quarantine's .error.txt) holds a short sanitised excerpt."""
    (mirror / "cboe" / "RUT_History.csv").write_bytes(HOSTILE + b"\n" + GOOD.split(b"\n", 1)[1])
    message = ingest_rut(rut_only)
    assert "no DATE column in header" in message
    (line,) = message.splitlines()[1:]
    assert all(c.isprintable() for c in line)
    assert len(line) < 600  # location, a short excerpt of the header, the quarantine path
    assert "A" * (EXCERPT_CHARS + 1) not in message and "\x1b" not in message and "\x00" not in message
    (reason,) = [p for p in files(rut_only.quarantine_dir) if p.name.endswith(".error.txt")]
    assert "\x1b" not in reason.read_text() and "A" * (EXCERPT_CHARS + 1) not in reason.read_text()


def test_a_long_line_with_spaces_is_cut_to_a_bounded_problem():
    with pytest.raises(SourceError) as err:
        cboe.parse(b"X " * 5000 + b"\n01/02/2024,1\n", "RUT", "cboe/RUT_History.csv")
    assert err.value.problem.startswith("no DATE column in header ['X X X")
    assert len(err.value.problem) < 1050 and err.value.problem.endswith(" more characters)")


def test_an_http_error_answer_with_hostile_bytes_is_quoted_short():
    with Upstream() as up:
        url = up.route("/x.json", HOSTILE, status=400)
        with pytest.raises(SourceError) as err:
            fetch.fetch_http(url, "x.json", "yahoo", timeout=2)
    assert str(err.value).startswith(f"yahoo: {url}: HTTP 400: ?]0;owned??[2J?[31m????AAA")
    assert_short(err.value.problem)
    assert len(err.value.problem) < 200
