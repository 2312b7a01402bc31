"""Running edgecam unattended under systemd: readiness and watchdog notifications (notify), the
unit, its config and its installation (install), and log lines journald keeps whole (journal)."""
