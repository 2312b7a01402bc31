"""MQTT: each event (or frame) as JSON on TOPIC/event, the latest one retained on TOPIC/state, and
TOPIC/status "online"/"offline" (retained; the broker publishes "offline" itself, as the last will,
when edgecam dies without saying goodbye). Optionally announces itself to Home Assistant through
MQTT discovery. Publishing runs on its own thread; the broker being slow or away never stalls
inference (paho reconnects in the background)."""
from __future__ import annotations

import json
import logging
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from edgecam.base.frame import Frame, Prediction
from edgecam.sinks.base import ThreadedSink, record
from edgecam.sinks.metrics import Metrics

log = logging.getLogger(__name__)

QOS = 1
QUEUE = 256  # events waiting for the publishing thread (the oldest is dropped beyond that)


@dataclass(frozen=True)
class BrokerUrl:
    tls: bool
    host: str
    port: int
    topic: str
    username: str | None
    password: str | None

    @property
    def shown(self) -> str:
        """The URL with its password masked, for messages (as every URL edgecam shows)."""
        user = f"{self.username}{':***' if self.password is not None else ''}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}/{self.topic}"


def parse_url(value: str) -> BrokerUrl:
    """mqtt[s]://[user[:password]@]host[:port][/topic]; ValueError with the reason otherwise."""
    parts = urlsplit(value)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError("must be mqtt://[user:password@]host[:port]/topic (or mqtts:// for TLS)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has a bad port") from None
    if not parts.hostname:
        raise ValueError("must name the broker's host")
    topic = parts.path.strip("/") or "edgecam"
    if "#" in value or parts.query or any(c in topic for c in "+\0"):
        raise ValueError("topic must not contain the wildcards # or +")
    tls = parts.scheme == "mqtts"
    return BrokerUrl(tls, parts.hostname, port or (8883 if tls else 1883), topic,
                     unquote(parts.username) if parts.username else None,
                     unquote(parts.password) if parts.password is not None else None)


class Mqtt(ThreadedSink[tuple[Frame, Prediction]]):
    """With several cameras each has its topics, TOPIC/CAMERA/event and TOPIC/CAMERA/state, and its
    own Home Assistant device; TOPIC/status is the process's."""

    def __init__(self, url: BrokerUrl, ca_file: str | None = None, discovery: str | None = None,
                 metrics: Metrics | None = None, cameras: Sequence[str] = ("",)) -> None:
        import paho.mqtt.client as paho

        super().__init__("mqtt", QUEUE)
        self.url = url
        self.cameras = list(cameras)
        self.discovery = discovery  # Home Assistant's discovery prefix, or None
        self.metrics = metrics
        self.status_topic = f"{url.topic}/status"
        self._paho = paho
        self._connected_once = False
        self._disconnect_warned = False
        self.connection_failures = 0  # failed connects and lost connections; dropped messages are errors
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                  client_id=f"edgecam-{socket.gethostname()}-{os.getpid()}")
        if url.username:
            self.client.username_pw_set(url.username, url.password)
        if url.tls:
            self.client.tls_set(ca_certs=ca_file)
        self.client.will_set(self.status_topic, "offline", qos=QOS, retain=True)
        self.client.max_queued_messages_set(QUEUE)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        if metrics is not None:
            metrics.counters["edgecam_mqtt_connection_failures_total"] = (
                "failed or lost connections to the MQTT broker", lambda: self.connection_failures)

    def open(self) -> None:
        # connect_async: a broker that is down at start-up is retried, not a reason to stop.
        self.client.connect_async(self.url.host, self.url.port, keepalive=30)
        self.client.loop_start()
        super().open()
        log.info("publishing to %s", self.url.shown)

    def close(self, reloading: bool = False) -> None:
        super().close(reloading)
        if self.client.is_connected():
            self.client.publish(self.status_topic, "offline", qos=QOS, retain=True).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()

    def handle(self, item: tuple[Frame, Prediction]) -> None:
        """Publish one event (or frame) and the new state."""
        rec = record(*item)
        payload = json.dumps(rec, ensure_ascii=False)
        best = rec["top"][0] if rec["top"] else {"label": None, "score": 0.0}  # none selected
        event = rec.get("event", {})
        state = json.dumps({"label": event.get("label", best["label"]),
                            "score": event.get("score", best["score"]), "time": rec["time"],
                            "frame": rec["frame"], "model": rec["model"], "top": rec["top"]},
                           ensure_ascii=False)
        base = self.topic(item[0].camera)
        for topic, body, retain in ((f"{base}/event", payload, False), (f"{base}/state", state, True)):
            result = self.client.publish(topic, body, qos=QOS, retain=retain)
            if result.rc not in (self._paho.MQTT_ERR_SUCCESS, self._paho.MQTT_ERR_NO_CONN) \
                    and self.metrics is not None:
                self.metrics.error("mqtt")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._warn(f"broker {self.url.shown} refused the connection ({reason_code}): check the "
                       "user name, password and topic permissions")
            return
        if self._connected_once:
            log.info("MQTT: connected to %s again", self.url.shown)
        self._connected_once, self._disconnect_warned = True, False
        client.publish(self.status_topic, "online", qos=QOS, retain=True)
        if self.discovery:
            self._announce()  # on each connect: a restarted broker may have forgotten it

    def _on_connect_fail(self, client, userdata) -> None:
        self._warn(f"cannot reach the broker {self.url.shown}: retrying in the background; "
                   "classification goes on (events are queued, then dropped)")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code != 0:
            self._warn(f"lost the broker {self.url.shown} ({reason_code}): retrying in the "
                       "background; classification goes on")

    def _warn(self, message: str) -> None:
        """One warning per outage (the first failed connect, each loss), every failure counted."""
        self.connection_failures += 1
        if not self._disconnect_warned:
            self._disconnect_warned = True
            log.warning("MQTT: %s", message)

    def topic(self, camera: str) -> str:
        """The topics of a camera's events and state sit under this."""
        return f"{self.url.topic}/{camera}" if camera else self.url.topic

    def _announce(self) -> None:
        for camera in self.cameras:
            self._announce_camera(self.topic(camera))

    def _announce_camera(self, base: str) -> None:
        """Home Assistant discovery: a 'label' and a 'score' sensor reading the state topic."""
        node = re.sub(r"[^A-Za-z0-9_-]+", "_", base).strip("_") or "edgecam"
        device = {"identifiers": [f"edgecam_{node}"], "name": f"edgecam {base}",
                  "manufacturer": "edgecam"}
        state = f"{base}/state"
        for key, name, template, extra in (
                ("label", "Label", "{{ value_json.label }}",
                 {"icon": "mdi:camera-iris", "json_attributes_topic": state}),
                ("score", "Score", "{{ (value_json.score * 100) | round(1) }}",
                 {"unit_of_measurement": "%", "state_class": "measurement"})):
            config = {"name": name, "unique_id": f"edgecam_{node}_{key}",
                      "state_topic": state, "value_template": template,
                      "availability_topic": self.status_topic, "payload_available": "online",
                      "payload_not_available": "offline", "device": device, **extra}
            self.client.publish(f"{self.discovery}/sensor/{node}/{key}/config", json.dumps(config),
                                qos=QOS, retain=True)
