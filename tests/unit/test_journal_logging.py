"""Logging under systemd: syslog priority prefixes and no timestamp when stderr is the journal."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

from appliance.system.journal_logging import JournalFormatter, stream_is_journal, syslog_priority

SCRIPT = """
import logging
from appliance.system.journal_logging import configure_logging
configure_logging(logging.INFO)
log = logging.getLogger("appliance.test")
log.info("loaded")
log.warning("broker gone")
try:
    raise RuntimeError("boom")
except RuntimeError:
    log.exception("failed")
"""


def _run_with_stderr_in(path: Path, env_extra: dict[str, str]) -> list[str]:
    with path.open("w") as stderr:
        env = {**os.environ, **env_extra}
        if "JOURNAL_STREAM" in env_extra and env_extra["JOURNAL_STREAM"] == "match":
            status = os.fstat(stderr.fileno())
            env["JOURNAL_STREAM"] = f"{status.st_dev}:{status.st_ino}"
        subprocess.run([sys.executable, "-c", SCRIPT], stderr=stderr, env=env, check=True, timeout=60)
    return path.read_text().splitlines()


def test_priorities_follow_syslog() -> None:
    levels = [logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG, 5]
    assert [syslog_priority(level) for level in levels] == [2, 3, 4, 6, 7, 7]


def test_every_line_of_a_traceback_keeps_the_priority() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.LogRecord("appliance.x", logging.ERROR, __file__, 1, "it %s", ("broke",), sys.exc_info())
    lines = JournalFormatter().format(record).splitlines()
    assert lines[0] == "<3>appliance.x: it broke"
    assert len(lines) > 2 and all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>ValueError: bad"


def test_stream_is_journal_only_when_device_and_inode_match(tmp_path: Path) -> None:
    with (tmp_path / "err").open("w") as stream:
        status = os.fstat(stream.fileno())
        assert stream_is_journal(stream, {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"})
        assert not stream_is_journal(stream, {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino + 1}"})
        assert not stream_is_journal(stream, {"JOURNAL_STREAM": "garbage"})
        assert not stream_is_journal(stream, {})
    assert not stream_is_journal(io.StringIO(), {"JOURNAL_STREAM": "1:2"})


def test_a_process_whose_stderr_is_the_journal_logs_priorities_without_timestamps(tmp_path: Path) -> None:
    lines = _run_with_stderr_in(tmp_path / "journal", {"JOURNAL_STREAM": "match"})
    assert lines[:2] == ["<6>appliance.test: loaded", "<4>appliance.test: broker gone"]
    assert lines[2] == "<3>appliance.test: failed"
    assert all(line.startswith("<3>") for line in lines[2:])
    assert lines[-1] == "<3>RuntimeError: boom"


def test_a_process_writing_elsewhere_keeps_timestamps(tmp_path: Path) -> None:
    lines = _run_with_stderr_in(tmp_path / "file", {"JOURNAL_STREAM": "1:1", "INVOCATION_ID": "abc"})
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO appliance.test: loaded$", lines[0])
    assert " WARNING appliance.test: broker gone" in lines[1]
    assert not any(line.startswith("<") for line in lines)
