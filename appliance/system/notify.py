"""The sd_notify protocol in plain Python: newline-separated `KEY=VALUE` datagrams to $NOTIFY_SOCKET.

systemd (with `Type=notify`) passes the path of a unix datagram socket in NOTIFY_SOCKET; a name that
starts with `@` lives in the abstract namespace, where the address starts with a NUL byte instead.
Without the variable (a terminal, a test, a container without systemd) every send is a quiet no-op, so
the appliance needs no systemd library and behaves the same everywhere else.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def notify_address(value: str) -> str | bytes | None:
    """The socket address NOTIFY_SOCKET names: a path, an abstract name (bytes), or None if unusable."""
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock:... and relative paths are not for us


class NotifySocket:
    """Sends sd_notify messages; never blocks and never raises (a lost status line is not worth a crash)."""

    def __init__(self, address: str | bytes | None) -> None:
        self.address = address
        self._socket: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> NotifySocket:
        value = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
        address = notify_address(value) if value else None
        if value and address is None:
            log.warning("NOTIFY_SOCKET=%r is not a unix socket path or abstract name; not notifying", value)
        return cls(address)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send one datagram of `KEY=VALUE` fields; True if it went out."""
        if self.address is None or not fields:
            return False
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._socket.setblocking(False)  # a full receive queue drops the message, never stalls the loop
            self._socket.sendto("\n".join(fields).encode(), self.address)
            return True
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify the service manager: %s", exc)
                self._warned = True
            return False

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
