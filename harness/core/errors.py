"""Failure classes: every failed operation is data — a class name, a count and one example.

Pure. The class names are part of the results format (summary.json "errors" keys):

    connect_refused   the target refused the TCP connection
    connect_timeout   no connection within the connect timeout
    connect_error     other connect failures (DNS, unreachable)
    reset             the connection was reset or closed before a response
    read_timeout      connected, but no complete response within the timeout
    tls               TLS handshake or certificate failure
    http_<status>     an HTTP error status (4xx/5xx), e.g. http_503
    protocol          a response harness could not understand (bad JSON, missing id, ...)
    not_ready         an operation that was due but could not start (its VEN never provisioned)
    abandoned         in flight when the run stopped and the drain deadline passed
    mqtt_connect      no MQTT connection to the broker (refused, timed out, CONNACK refusal)
    mqtt_disconnect   the broker dropped an established MQTT connection (the VEN reconnects with back-off)
    mqtt_subscribe    the broker refused a subscription (SUBACK 0x80) or never acknowledged it
"""

from __future__ import annotations

CONNECT_REFUSED = "connect_refused"
CONNECT_TIMEOUT = "connect_timeout"
CONNECT_ERROR = "connect_error"
RESET = "reset"
READ_TIMEOUT = "read_timeout"
TLS = "tls"
PROTOCOL = "protocol"
NOT_READY = "not_ready"
ABANDONED = "abandoned"
MQTT_CONNECT = "mqtt_connect"
MQTT_DISCONNECT = "mqtt_disconnect"
MQTT_SUBSCRIBE = "mqtt_subscribe"


def http_class(status: int) -> str:
    return f"http_{status}"


class Failure(Exception):
    """An operation failed in a classified way; raised by transports and dialects, caught per operation."""

    def __init__(self, error_class: str, message: str, status: int | None = None) -> None:
        super().__init__(error_class, message, status)
        self.error_class = error_class
        self.message = message
        self.status = status
        self.retried = False  # as Reply.retried: the request was sent twice, this is the second attempt's failure

    def __str__(self) -> str:
        return f"{self.error_class}: {self.message}"
