"""MQTT 5 round trips through the hub with real clients (python3-paho-mqtt from Debian).

A subscriber and a publisher, each MQTT 5 or 3.1.1 (--sub-version, --pub-version): the
subscriber subscribes to --topic, the publisher publishes one message with MQTT 5 properties
(user properties, payload format indicator, content type, response topic, correlation data,
message expiry) when it speaks MQTT 5, and the subscriber prints what it received as one JSON
line: {"connack": ..., "topic": ..., "payload": ..., "qos": ..., "properties": {...}}.
With --retain the message is retained and the subscriber subscribes after it was published.
Exit status: 0 received, 2 on errors and timeouts.
"""
import argparse
import json
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def make_client(version, client_id, a):
    protocol = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
    if version == 5:
        client = mqtt.Client(client_id=client_id, protocol=protocol)
    else:
        client = mqtt.Client(client_id=client_id, clean_session=True, protocol=protocol)
    client.username_pw_set(a.username, a.password)
    return client


def properties_of(message):
    p = getattr(message, "properties", None)
    if p is None:
        return {}
    out = {}
    for name in ("UserProperty", "PayloadFormatIndicator", "ContentType", "ResponseTopic",
                 "CorrelationData", "MessageExpiryInterval", "TopicAlias",
                 "SubscriptionIdentifier"):
        if hasattr(p, name):
            value = getattr(p, name)
            if isinstance(value, bytes):
                value = value.decode()
            if name == "UserProperty":
                value = [list(pair) for pair in value]
            out[name] = value
    return out


def connect(client, a, connected):
    state = {}

    def on_connect(c, userdata, flags, rc, properties=None):
        state["rc"] = rc if isinstance(rc, int) else rc.value
        connected.set()

    client.on_connect = on_connect
    client.connect(a.host, a.port, keepalive=30)
    client.loop_start()
    if not connected.wait(a.timeout):
        raise RuntimeError("no CONNACK")
    return state["rc"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--username", default="test")
    p.add_argument("--password", default="hahaha")
    p.add_argument("--topic", default="paho5/test")
    p.add_argument("--qos", type=int, default=1)
    p.add_argument("--sub-version", type=int, default=5, choices=[3, 5])
    p.add_argument("--pub-version", type=int, default=5, choices=[3, 5])
    p.add_argument("--retain", action="store_true")
    p.add_argument("--timeout", type=float, default=5.0)
    a = p.parse_args()

    received = threading.Event()
    subscribed = threading.Event()
    result = {}

    sub = make_client(a.sub_version, "paho-sub", a)

    def on_subscribe(c, userdata, mid, granted, properties=None):
        subscribed.set()

    def on_message(c, userdata, msg):
        result.update(topic=msg.topic, payload=msg.payload.decode(), qos=msg.qos,
                      retain=bool(msg.retain), properties=properties_of(msg))
        received.set()

    sub.on_subscribe = on_subscribe
    sub.on_message = on_message

    pub = make_client(a.pub_version, "paho-pub", a)
    try:
        if not a.retain:
            result["connack"] = connect(sub, a, threading.Event())
            sub.subscribe(a.topic, qos=a.qos)
            if not subscribed.wait(a.timeout):
                print(json.dumps({"error": "no SUBACK"}))
                return 2
        connect(pub, a, threading.Event())
        props = None
        if a.pub_version == 5:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [("first", "1"), ("second", "2"), ("first", "3")]
            props.PayloadFormatIndicator = 1
            props.ContentType = "text/plain"
            props.ResponseTopic = "paho5/reply"
            props.CorrelationData = b"request-7"
            props.MessageExpiryInterval = 3600
        info = pub.publish(a.topic, "hello from " + str(a.pub_version), qos=a.qos,
                           retain=a.retain, properties=props)
        info.wait_for_publish()
        if a.retain:
            result["connack"] = connect(sub, a, threading.Event())
            sub.subscribe(a.topic, qos=a.qos)
        if not received.wait(a.timeout):
            print(json.dumps({"error": "message not received"}))
            return 2
        print(json.dumps(result))
        if a.retain:  # leave nothing behind
            pub.publish(a.topic, b"", qos=a.qos, retain=True).wait_for_publish()
        return 0
    except Exception as e:  # socket errors
        print(json.dumps({"error": str(e)}))
        return 2
    finally:
        for c in (pub, sub):
            c.disconnect()
            c.loop_stop()


if __name__ == "__main__":
    sys.exit(main())
