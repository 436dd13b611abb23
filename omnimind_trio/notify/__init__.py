"""Notifications: telling the user that a run failed, recovered or succeeded.

The notifier node of the tree (a bounded queue and its consumer, in the daemon's nursery),
the webhook sender (JSON POST, timeout, retries), the desktop notifier (the session
D-Bus, through jeepney) and the messages they send. It is handed finished records and
task definitions; it knows nothing of the scheduler or the store. Imports: models, dbus
(where the session bus is).
"""

from ._desktop import DesktopNotifier
from ._message import (
    FAILURE_OUTCOMES,
    STDERR_TAIL_BYTES,
    STDERR_TAIL_LINES,
    Notification,
    WebhookBody,
    failing_before,
    stderr_tail,
)
from ._notifier import HISTORY_RECORDS, History, Notifier, NotifierStatistics
from ._webhook import DeliveryFailed, WebhookSender

__all__ = [
    "FAILURE_OUTCOMES",
    "HISTORY_RECORDS",
    "STDERR_TAIL_BYTES",
    "STDERR_TAIL_LINES",
    "DeliveryFailed",
    "DesktopNotifier",
    "History",
    "Notification",
    "Notifier",
    "NotifierStatistics",
    "WebhookBody",
    "WebhookSender",
    "failing_before",
    "stderr_tail",
]
