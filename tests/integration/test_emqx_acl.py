"""The EMQX ACL example (cluster/emqx-acl.conf), read by Erlang/OTP as EMQX reads it.

There is no EMQX here: this checks what can be checked without one. The file parses with
file:consult/1, every rule has a shape EMQX 5's rule compiler takes, every regular expression compiles
with Erlang's re, and the device username pattern takes device ids and refuses the fleet-wide topic
levels and anything that would put a wildcard or another level into `${username}`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK = Path(__file__).with_name("emqx_acl_check.escript")
ACL = ROOT / "cluster" / "emqx-acl.conf"

DEVICE_IDS = ["kitchen-1", "sim-0001", "A_b", "x" * 64, "allx", "rollouts", "group-2"]
NOT_DEVICE_IDS = [
    "all",
    "ALL",
    "Group",
    "group",
    "replies",
    "release",
    "rollout",
    "a/b",
    "#",
    "+",
    "kitchen+",
    "",
    "-lead",
    "x" * 65,
]


def check(path: Path, *cases: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("escript") is None:
        raise RuntimeError("Erlang is not installed (scripts/setup --test installs erlang-base)")
    return subprocess.run(["escript", str(CHECK), str(path), *cases], capture_output=True, text=True, timeout=60)


def test_the_emqx_acl_reads_as_emqx_rules_and_its_device_pattern_takes_only_device_ids() -> None:
    cases = [f"+{name}" for name in DEVICE_IDS] + [f"-{name}" for name in NOT_DEVICE_IDS]
    done = check(ACL, *cases)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok ")


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ('{deny, {username, "x"}, all}.', "not a rule EMQX compiles"),
        ('{allow, {username, {re, "(open"}}, publish, ["a"]}.', "bad regular expression"),
        ('{allow, all, publish, ["a/${user}"]}.', "placeholder ${user}"),
        ('{allow, all, pub, ["a"]}.', "bad action"),
        ('{allow, all, publish, ["a"]', "syntax error"),
    ],
)
def test_the_check_finds_a_broken_rule(tmp_path: Path, rule: str, problem: str) -> None:
    broken = tmp_path / "acl.conf"
    broken.write_text(ACL.read_text() + rule + "\n")
    done = check(broken)
    assert done.returncode == 1 and problem in done.stdout, done.stdout + done.stderr
