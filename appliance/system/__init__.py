"""The box's operating system side: systemd notify and watchdog, the lifecycle, journald logging,
process figures and reachability probes."""
