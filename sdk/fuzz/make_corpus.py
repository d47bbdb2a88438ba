#!/usr/bin/env python3
"""Writes the seed corpora of the MQTT fuzzers (corpus/<fuzzer>/ next to this file).

mqtt_decode_fuzzer: one file per packet type and direction (c2s-*: what the hub reads from a
client, s2c-*: what the SDK client reads from the hub), the variants the codec treats apart
(MQTT 3.1, QoS 0/1/2, retain, dup) and two whole sessions; then the same in MQTT 5 (c2s-v5-*,
s2c-v5-*): every packet type with properties, reason codes in their short and long forms,
subscription options, AUTH, and a session. The fuzzer decodes every file as both versions.
mqtt_encode_fuzzer: one file per packet type and version (the first byte picks both: 0..14 are
the types in MQTT 3.1.1, 15..29 the same types in MQTT 5).

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
    # MQTT 5 puts properties after the keep alive; CONNECT is read by its own level.
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

def prop(identifier, value):
    """One property: identifier byte, then the value already in its wire form."""
    return bytes([identifier]) + value


def u32(n):
    return struct.pack(">I", n)


def props(*items):
    body = b"".join(items)
    return varint(len(body)) + body


def user(name, value):
    return prop(0x26, string(name) + string(value))


def publish5(topic, payload, properties, qos=0, packet_id=0, retain=False, dup=False):
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    body = string(topic) + (u16(packet_id) if qos else b"") + properties + payload
    return packet(first, body)


CONNECT5 = packet(0x10, string("MQTT") + bytes([5, 0xEE]) + u16(30) +
                  props(prop(0x11, u32(3600)), prop(0x21, u16(20)), prop(0x27, u32(65536)),
                        prop(0x22, u16(10)), prop(0x17, b"\x01"), prop(0x19, b"\x01"),
                        user("region", "east"), prop(0x15, string("PLAIN")),
                        prop(0x16, string(b"\x00\x01"))) +
                  string("sensor-5") +
                  props(prop(0x18, u32(5)), prop(0x01, b"\x01"), prop(0x02, u32(60)),
                        prop(0x03, string("text/plain")), prop(0x08, string("replies/5")),
                        prop(0x09, string(b"\x07")), user("k", "v")) +
                  string("clients/sensor-5/state") + string(b"offline") + string("user") +
                  string(b"pass"))

CLIENT_TO_SERVER_V5 = {
    "connect": CONNECT5,
    "connect-password-only": packet(0x10, string("MQTT") + bytes([5, 0x42]) + u16(0) +
                                    props() + string("") + string(b"token")),
    "publish-properties": publish5("site/t", b'{"t":21.5}', props(
        prop(0x01, b"\x01"), prop(0x02, u32(30)), prop(0x03, string("application/json")),
        prop(0x08, string("site/replies")), prop(0x09, string(b"\x01\x02")),
        prop(0x23, u16(4)), user("a", "1"), user("a", "2")), qos=1, packet_id=3),
    "publish-alias-only": publish5("", b"x", props(prop(0x23, u16(4)))),
    "publish-qos2-dup": publish5("q", b"\x00", props(), qos=2, packet_id=9, dup=True),
    "puback-short": packet(0x40, u16(1)),
    "puback-reason": packet(0x40, u16(1) + b"\x10"),
    "pubrec-properties": packet(0x50, u16(2) + b"\x80" + props(prop(0x1F, string("no")),
                                                               user("x", "y"))),
    "pubrel-not-found": packet(0x62, u16(2) + b"\x92"),
    "pubcomp": packet(0x70, u16(2) + b"\x00" + props()),
    "subscribe-options": packet(0x82, u16(3) + props(prop(0x0B, varint(16384)), user("s", "1")) +
                                string("t/#") + bytes([0x2D]) + string("$share/g/a/+") +
                                bytes([0x09]) + string("+/status") + bytes([0x12])),
    "unsubscribe": packet(0xA2, u16(4) + props(user("u", "1")) + string("t/#") +
                          string("$share/g/a/+")),
    "pingreq": packet(0xC0),
    "disconnect-short": packet(0xE0),
    "disconnect-will": packet(0xE0, b"\x04"),
    "disconnect-properties": packet(0xE0, b"\x00" + props(prop(0x11, u32(0)),
                                                           prop(0x1F, string("bye")))),
    "auth": packet(0xF0, b"\x18" + props(prop(0x15, string("SCRAM-SHA-1")),
                                         prop(0x16, string(b"\x01\x02\x03")))),
    "auth-short": packet(0xF0),
    "session": CONNECT5 + packet(0x82, u16(1) + props() + string("a/+") + bytes([2])) +
               publish5("a/b", b"x" * 200, props(prop(0x02, u32(5))), qos=2, packet_id=9) +
               packet(0x62, u16(9)) + packet(0x40, u16(1) + b"\x10") + packet(0xC0) +
               packet(0xA2, u16(2) + props() + string("a/+")) + packet(0xE0, b"\x00"),
}

SERVER_TO_CLIENT_V5 = {
    "connack": packet(0x20, b"\x01\x00" + props(
        prop(0x11, u32(60)), prop(0x12, string("auto-1")), prop(0x13, u16(30)),
        prop(0x1A, string("resp/")), prop(0x1C, string("other:1883")), prop(0x1F, string("ok")),
        prop(0x21, u16(100)), prop(0x22, u16(10)), prop(0x24, b"\x01"), prop(0x25, b"\x01"),
        prop(0x27, u32(1 << 20)), prop(0x28, b"\x01"), prop(0x29, b"\x01"),
        prop(0x2A, b"\x01"), user("server", "baetyl"))),
    "connack-refused": packet(0x20, b"\x00\x87" + props(prop(0x1F, string("denied")))),
    "publish-subscription-ids": publish5("t/topic", b"{}", props(
        prop(0x0B, varint(1)), prop(0x0B, varint(300)), prop(0x02, u32(10))), qos=1,
        packet_id=7),
    "suback": packet(0x90, u16(3) + props(prop(0x1F, string("partly"))) +
                     bytes([0x01, 0x00, 0x02, 0x80, 0x8F, 0x97, 0x9E, 0xA1, 0xA2])),
    "unsuback": packet(0xB0, u16(4) + props() + bytes([0x00, 0x11, 0x8F])),
    "pingresp": packet(0xD0),
    "disconnect-taken-over": packet(0xE0, b"\x8e"),
    "disconnect-server-moved": packet(0xE0, b"\x9d" + props(prop(0x1C, string("other:1883")))),
    "session": packet(0x20, b"\x00\x00" + props()) +
               packet(0x90, u16(1) + props() + b"\x02") +
               publish5("", b"y" * 300, props(prop(0x23, u16(1))), qos=1, packet_id=1) +
               packet(0x50, u16(2)) + packet(0x70, u16(3) + b"\x92") + packet(0xD0) +
               packet(0xB0, u16(2) + props() + b"\x00"),
}

PACKET_TYPES = ["connect", "connack", "publish", "puback", "pubrec", "pubrel", "pubcomp",
                "subscribe", "suback", "unsubscribe", "unsuback", "pingreq", "pingresp",
                "disconnect", "auth"]


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
    for name, data in CLIENT_TO_SERVER_V5.items():
        write("mqtt_decode_fuzzer", "c2s-v5-" + name, data)
    for name, data in SERVER_TO_CLIENT_V5.items():
        write("mqtt_decode_fuzzer", "s2c-v5-" + name, data)
    # First byte: the type; the rest fills the fields (strings from the front, flags and numbers
    # from the back).
    filler = b"a/b\\\x01sensor\\\x01payload\\\x01user\\\x00\x01\x02\x03\x07\x00\x01\x02\x05\x01"
    for index, name in enumerate(PACKET_TYPES):
        if name != "auth":  # AUTH exists in MQTT 5 only
            write("mqtt_encode_fuzzer", name, bytes([index]) + filler)
        write("mqtt_encode_fuzzer", "v5-" + name, bytes([index + 15]) + filler)


if __name__ == "__main__":
    main()
