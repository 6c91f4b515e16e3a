#!/usr/bin/env python3
"""An MQTT client that is not ours (Eclipse Paho, paho-mqtt 2.x) against fake-data-source's
MQTT side, written from the topics and messages its documentation gives.

Usage: mqtt_subscriber.py HOST PORT STREAMS COMPONENTS SECONDS

It subscribes to failover-lab/# at QoS 1 for SECONDS and checks that it saw every stream, every
tick of each stream in order without a gap, each component's health, and that a client that
publishes on the source's topics is disconnected. Prints "all checks passed" or the first check
that failed, and exits 1 then.
"""

import json
import sys
import threading
import time

import paho.mqtt.client as mqtt

HOST, PORT = sys.argv[1], int(sys.argv[2])
STREAMS, COMPONENTS, SECONDS = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])

seqs = {}        # stream -> list of seqs in arrival order
statuses = {}    # component -> last status
bad = []
lock = threading.Lock()
subscribed = threading.Event()


def on_connect(client, userdata, flags, reason_code, properties):
    if reason_code.is_failure:
        bad.append(f"connect refused: {reason_code}")
        return
    client.subscribe("failover-lab/#", qos=1)


def on_subscribe(client, userdata, mid, reason_codes, properties):
    if any(rc.is_failure for rc in reason_codes):
        bad.append(f"subscription refused: {reason_codes}")
    subscribed.set()


def on_message(client, userdata, msg):
    parts = msg.topic.split("/")
    try:
        body = json.loads(msg.payload)
    except ValueError:
        bad.append(f"not JSON on {msg.topic}: {msg.payload[:60]!r}")
        return
    with lock:
        if len(parts) == 3 and parts[2] == "status":
            statuses[int(parts[1])] = body
        elif len(parts) == 3:
            if not {"seq", "timestamp", "value"} <= body.keys():
                bad.append(f"a point without seq, timestamp and value: {body}")
            seqs.setdefault(int(parts[2]), []).append(body["seq"])
        else:
            bad.append(f"an unknown topic {msg.topic}")


def check(what, ok, detail=""):
    if not ok:
        print(f"FAILED: {what} {detail}")
        sys.exit(1)
    print(f"ok: {what}")


sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-subscriber")
sub.on_connect, sub.on_subscribe, sub.on_message = on_connect, on_subscribe, on_message
sub.connect(HOST, PORT, keepalive=10)
sub.loop_start()
check("subscribed", subscribed.wait(5), bad)
time.sleep(SECONDS)

# A client that publishes on the source's topics is disconnected.
gone = threading.Event()
pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-intruder")
pub.on_disconnect = lambda c, u, f, rc, p: gone.set()
pub.connect(HOST, PORT, keepalive=10)
pub.loop_start()
time.sleep(0.5)
pub.publish("failover-lab/0/0", json.dumps({"seq": 1, "timestamp": "2026-01-01T00:00:00Z", "value": 0}), qos=1)
check("a client that publishes is disconnected", gone.wait(5))
pub.loop_stop()

sub.loop_stop()
sub.disconnect()
with lock:
    check("no bad messages", not bad, bad)
    check("every stream seen", sorted(seqs) == list(range(STREAMS)), sorted(seqs))
    for stream, got in sorted(seqs.items()):
        check(f"stream {stream}: every tick in order, none missing or twice ({len(got)} ticks)",
              len(got) > 1 and got == list(range(got[0], got[0] + len(got))), got[:20])
    check("every component's health", sorted(statuses) == list(range(COMPONENTS)), statuses)
    check("every component is up", all(s.get("up") is True for s in statuses.values()), statuses)
    check("the components cover the streams",
          sum(s["streams"] for s in statuses.values()) == STREAMS, statuses)
print("all checks passed")
