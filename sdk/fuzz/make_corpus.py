#!/usr/bin/env python3
"""Writes the seed corpora of the MQTT fuzzers (corpus/<fuzzer>/ next to this file).

mqtt_decode_fuzzer: one file per packet type and direction (c2s-*: what the hub reads from a
client, s2c-*: what the SDK client reads from the hub), the variants the codec treats apart
(MQTT 3.1, an MQTT 5 CONNECT, QoS 0/1/2, retain, dup) and two whole sessions.
mqtt_encode_fuzzer: one file per packet type (its first byte picks the type).

The files are committed; run this again only to change them. Crash inputs that became regression
tests are added to the corpora by hand (see docs/fuzzing.md) and are not touched here.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def string(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(b)) + b


def packet(first, body=b""):
    return bytes([first]) + varint(len(body)) + body


def u16(n):
    return struct.pack(">H", n)


def connect(name="MQTT", level=4, flags=0x02, keepalive=60, client="sensor-1", will=None,
            user=None, password=None, extra=b""):
    body = string(name) + bytes([level, flags]) + u16(keepalive) + extra + string(client)
    if will:
        body += string(will[0]) + string(will[1])
    if user is not None:
        body += string(user)
    if password is not None:
        body += string(password)
    return packet(0x10, body)


def publish(topic, payload, qos=0, packet_id=0, retain=False, dup=False):
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    body = string(topic) + (u16(packet_id) if qos else b"") + payload
    return packet(first, body)


def subscribe(packet_id, *filters):
    return packet(0x82, u16(packet_id) + b"".join(string(f) + bytes([q]) for f, q in filters))


def unsubscribe(packet_id, *filters):
    return packet(0xA2, u16(packet_id) + b"".join(string(f) for f in filters))


CLIENT_TO_SERVER = {
    "connect": connect(flags=0xEE, will=("clients/sensor-1/state", b"offline"), user="test",
                       password="hahaha"),
    "connect-minimal": connect(client=""),
    "connect-mqtt31": connect(name="MQIsdp", level=3, flags=0x02),
    # MQTT 5 puts properties after the keep alive: the hub must still answer CONNACK 1.
    "connect-mqtt5": connect(level=5, extra=b"\x05\x11\x00\x00\x00\x3c"),
    "publish-qos0": publish("t", b'{"id":1}'),
    "publish-qos1-retain": publish("site/line-4/temperature", b"21.5", qos=1, packet_id=1,
                                   retain=True),
    "publish-qos2-dup": publish("$baidu/iot/edge/x", b"\x00\xff", qos=2, packet_id=65535, dup=True),
    "puback": packet(0x40, u16(1)),
    "pubrec": packet(0x50, u16(2)),
    "pubrel": packet(0x62, u16(2)),
    "pubcomp": packet(0x70, u16(2)),
    "subscribe": subscribe(3, ("t/#", 1), ("+/status", 0), ("$SYS/broker/+", 2)),
    "unsubscribe": unsubscribe(4, "t/#", "+/status"),
    "pingreq": packet(0xC0),
    "disconnect": packet(0xE0),
    "session": connect(client="c1") + subscribe(1, ("a/+", 2)) +
               publish("a/b", b"x" * 200, qos=2, packet_id=9) + packet(0x62, u16(9)) +
               packet(0x40, u16(1)) + packet(0xC0) + unsubscribe(2, "a/+") + packet(0xE0),
}

SERVER_TO_CLIENT = {
    "connack": packet(0x20, b"\x01\x00"),
    "connack-refused": packet(0x20, b"\x00\x05"),
    "publish-qos0": publish("t/topic", b'{"id":1}'),
    "publish-qos1": publish("t/sqlfilter", b'{"qos":1,"topic":"t","id":1}', qos=1, packet_id=7),
    "publish-qos2-retain": publish("r", b"retained", qos=2, packet_id=8, retain=True),
    "puback": packet(0x40, u16(1)),
    "pubrec": packet(0x50, u16(5)),
    "pubrel": packet(0x62, u16(8)),
    "pubcomp": packet(0x70, u16(5)),
    "suback": packet(0x90, u16(3) + bytes([1, 0, 0x80])),
    "unsuback": packet(0xB0, u16(4)),
    "pingresp": packet(0xD0),
    "session": packet(0x20, b"\x00\x00") + packet(0x90, u16(1) + b"\x02") +
               publish("a/b", b"y" * 300, qos=1, packet_id=1) + packet(0x50, u16(2)) +
               packet(0x70, u16(3)) + packet(0xD0) + packet(0xB0, u16(2)),
}

PACKET_TYPES = ["connect", "connack", "publish", "puback", "pubrec", "pubrel", "pubcomp",
                "subscribe", "suback", "unsubscribe", "unsuback", "pingreq", "pingresp",
                "disconnect"]


def write(fuzzer, name, data):
    directory = os.path.join(HERE, "corpus", fuzzer)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def main():
    for name, data in CLIENT_TO_SERVER.items():
        write("mqtt_decode_fuzzer", "c2s-" + name, data)
    for name, data in SERVER_TO_CLIENT.items():
        write("mqtt_decode_fuzzer", "s2c-" + name, data)
    # First byte: the type; the rest fills the fields (strings from the front, flags and numbers
    # from the back).
    filler = b"a/b\\\x01sensor\\\x01payload\\\x01user\\\x00\x01\x02\x03\x07\x00\x01\x02\x05\x01"
    for index, name in enumerate(PACKET_TYPES):
        write("mqtt_encode_fuzzer", name, bytes([index]) + filler)


if __name__ == "__main__":
    main()
