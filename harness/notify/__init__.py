"""Notification channels a simulated VEN listens on: the webhook receiver (and MQTT).

Edge. A channel lives in its worker's one event loop; it tells the VEN state what arrived, never the reverse."""
