"""A real client for the hub's end-to-end tests (python3-paho-mqtt from Debian).

Connects over tcp, ssl, ws or wss, subscribes to --topic, publishes one message to it and waits
for it to come back. Prints "connack <rc>" and then "received <payload>".
Exit status: 0 round trip done, 10 + rc when the CONNACK refused, 2 on errors and timeouts.
"""
import argparse
import ssl
import sys
import threading

import paho.mqtt.client as mqtt


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--scheme", default="tcp", choices=["tcp", "ssl", "ws", "wss"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/mqtt")
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--client-id", default="")
    p.add_argument("--topic", default="paho/test")
    p.add_argument("--qos", type=int, default=1)
    p.add_argument("--timeout", type=float, default=5.0)
    a = p.parse_args()

    transport = "websockets" if a.scheme in ("ws", "wss") else "tcp"
    client = mqtt.Client(client_id=a.client_id, clean_session=True, transport=transport)
    if transport == "websockets":
        client.ws_set_options(path=a.path)
    if a.scheme in ("ssl", "wss"):
        client.tls_set(ca_certs=a.ca, certfile=a.cert, keyfile=a.key,
                       cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    if a.username is not None:
        client.username_pw_set(a.username, a.password)

    connected = threading.Event()
    subscribed = threading.Event()
    received = threading.Event()
    state = {"rc": None, "payload": None, "granted": None}

    def on_connect(c, userdata, flags, rc):
        state["rc"] = rc
        connected.set()
        if rc == 0:
            c.subscribe(a.topic, a.qos)

    def on_subscribe(c, userdata, mid, granted):
        state["granted"] = granted
        subscribed.set()

    def on_message(c, userdata, msg):
        state["payload"] = msg.payload.decode()
        received.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(a.host, a.port, keepalive=30)
    except Exception as e:  # TLS and socket errors
        print("error", e)
        return 2
    client.loop_start()
    try:
        if not connected.wait(a.timeout):
            print("error no connack")
            return 2
        print("connack", state["rc"])
        if state["rc"] != 0:
            return 10 + state["rc"]
        if not subscribed.wait(a.timeout):
            print("error no suback")
            return 2
        if state["granted"][0] == 128:
            print("subscription refused")
            return 3
        client.publish(a.topic, "hello over " + a.scheme, qos=a.qos)
        if not received.wait(a.timeout):
            print("error message not received")
            return 2
        print("received", state["payload"])
        client.disconnect()
        return 0
    finally:
        client.loop_stop()


if __name__ == "__main__":
    sys.exit(main())
