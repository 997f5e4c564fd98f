"""How the process ends, as systemd sees it: 0 after a stop, EXIT_RESTART after a requested restart,
and a failure status when a stop hangs past the last-resort deadline."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from appliance.system.lifecycle import EXIT_HUNG, EXIT_RESTART

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from appliance.system.lifecycle import Lifecycle
    from appliance.system.service_notifier import ServiceNotifier

    async def main(how: str) -> int:
        life = Lifecycle(ServiceNotifier.from_environment({}), exit_deadline_s=0.5)

        async def wind_down() -> None:
            if how.endswith("hang"):
                await asyncio.to_thread(__import__("time").sleep, 60)  # a close that never returns

        supervisor = asyncio.create_task(life.supervise(wind_down))
        life.request_restart() if how.startswith("restart") else life.stop_requested.set()
        await supervisor
        return life.exit_code

    sys.exit(asyncio.run(main(sys.argv[1])))
    """
)


def ended(how: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, how], capture_output=True, text=True, timeout=60)


def test_a_clean_stop_exits_0_and_a_requested_restart_exits_with_the_restart_status() -> None:
    assert ended("stop").returncode == 0
    assert ended("restart").returncode == EXIT_RESTART


def test_a_stop_that_hangs_past_the_deadline_exits_as_a_failure_and_says_where() -> None:
    hung = ended("stop-hang")
    assert hung.returncode == EXIT_HUNG != 0
    assert "stopping took over 0.5 s" in hung.stderr and "Where it hung" in hung.stderr


def test_a_restart_that_hangs_still_comes_back() -> None:
    assert ended("restart-hang").returncode == EXIT_RESTART
