#!/usr/bin/python3
"""A small cloud for baetyl-agent: what the agent's tests use and what anyone can run to try
over-the-air updates without a vendor account (see docs/agent.md).

  cloud.py init DIR [--host NAME ...] [--device ID ...]   the PKI: CA, server, cloud and devices
  cloud.py device DIR ID                                  one more device certificate
  cloud.py serve DIR [--mqtt-port N] [--https-port N] [--require-client-cert]
                                                          mosquitto (mutual TLS) and HTTPS
  cloud.py pack DIR SRC --name NAME [--version V]         a volume zip of SRC and its MD5
  cloud.py ota DIR --device ID (--dir SRC | --zip FILE) --name NAME [--type APP|MST] ...
  cloud.py report DIR --device ID [--via mqtt|https]      the last report of a device

Everything lives in DIR: pki/ (certificates), volumes/ (the zips served at /volumes/<file>),
reports/<device>.mqtt.json and .https.json (the last report received each way), https.log (one
line per HTTPS request), mosquitto.log, cloud.json (the ports of a running serve). To try a
client's rules, GET or POST /redirect?to=URL answers a redirect to URL, and
/volumes/<file>?unsized sends the zip without a Content-Length. Needs only Debian's python3,
openssl, mosquitto and mosquitto-clients.
"""
import argparse
import base64
import hashlib
import http.server
import json
import os
import pwd
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import zipfile

REPORT_TOPIC = "$baidu/iot/edge/%s/core/forward"
DESIRE_TOPIC = "$baidu/iot/edge/%s/core/backward"
REPORT_PATH = "/v1/edge/info"
DEVICE_ID = re.compile(r"^[0-9A-Za-z_-]{1,128}$")
VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$")
CLOUD_USER = "cloud"  # the CN of the certificate this tool publishes events with


def fail(message):
    print("cloud: " + message, file=sys.stderr)
    sys.exit(1)


def write_atomically(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


# ---- PKI ---------------------------------------------------------------------------------------

def openssl(*args):
    result = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if result.returncode != 0:
        fail("openssl %s failed: %s" % (args[0], result.stderr.strip()))


def pki_dir(root):
    return os.path.join(root, "pki")


def issue(root, name, subject, extensions):
    """A key and a certificate signed by the cloud's CA: pki/<name>.key, pki/<name>.pem."""
    pki = pki_dir(root)
    key, csr, pem = (os.path.join(pki, name + ext) for ext in (".key", ".csr", ".pem"))
    ext_file = os.path.join(pki, name + ".ext")
    with open(ext_file, "w") as out:
        out.write(extensions)
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-subj", subject, "-out", csr)
    openssl("x509", "-req", "-in", csr, "-CA", os.path.join(pki, "ca.pem"), "-CAkey",
            os.path.join(pki, "ca.key"), "-CAcreateserial", "-days", "3650", "-sha256",
            "-extfile", ext_file, "-out", pem)
    os.remove(csr)
    os.remove(ext_file)
    os.chmod(key, 0o600)


def issue_device(root, device):
    if not DEVICE_ID.match(device):
        fail("device id '%s' must match %s (it is the MQTT client id)" % (device, DEVICE_ID.pattern))
    issue(root, "device-" + device, "/CN=" + device,
          "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
          "extendedKeyUsage=clientAuth\n")
    print("device %s: %s/device-%s.pem and .key (with pki/ca.pem)" % (device, pki_dir(root), device))


def cmd_init(args):
    pki = pki_dir(args.dir)
    if os.path.exists(os.path.join(pki, "ca.pem")):
        fail("%s already holds a PKI" % pki)
    os.makedirs(pki, exist_ok=True)
    os.makedirs(os.path.join(args.dir, "volumes"), exist_ok=True)
    os.makedirs(os.path.join(args.dir, "reports"), exist_ok=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "3650", "-sha256",
            "-keyout", os.path.join(pki, "ca.key"), "-out", os.path.join(pki, "ca.pem"),
            "-subj", "/CN=baetyl test cloud CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    os.chmod(os.path.join(pki, "ca.key"), 0o600)
    names = ["DNS:localhost", "IP:127.0.0.1"]
    for host in args.host:
        names.append(("IP:" if re.match(r"^[0-9.]+$|:", host) else "DNS:") + host)
    issue(args.dir, "server", "/CN=baetyl test cloud",
          "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
          "extendedKeyUsage=serverAuth\nsubjectAltName=" + ",".join(names) + "\n")
    issue(args.dir, CLOUD_USER, "/CN=" + CLOUD_USER,
          "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
          "extendedKeyUsage=clientAuth\n")
    print("cloud PKI in %s (server certificate for %s)" % (pki, ", ".join(names)))
    for device in args.device:
        issue_device(args.dir, device)


def cmd_device(args):
    if not os.path.exists(os.path.join(pki_dir(args.dir), "ca.key")):
        fail("%s has no PKI: run 'cloud.py init %s' first" % (args.dir, args.dir))
    issue_device(args.dir, args.id)


# ---- serve: mosquitto and the HTTPS server ----------------------------------------------------

def free_port(host):
    import socket
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def write_mosquitto_conf(root, bind, port):
    pki = pki_dir(root)
    acl = os.path.join(root, "mosquitto.acl")
    with open(acl, "w") as out:
        # A device reports on its own forward topic and receives on its own backward topic; the
        # certificate's CN is its user name (use_identity_as_username).
        out.write("user %s\ntopic readwrite $baidu/#\n\n" % CLOUD_USER)
        out.write("pattern write " + REPORT_TOPIC.replace("%s", "%u") + "\n")
        out.write("pattern read " + DESIRE_TOPIC.replace("%s", "%u") + "\n")
    store = os.path.join(root, "mosquitto-db") + "/"
    os.makedirs(store, exist_ok=True)
    conf = os.path.join(root, "mosquitto.conf")
    with open(conf, "w") as out:
        out.write("\n".join([
            # Started as root, mosquitto would switch to the mosquitto user, who cannot read the
            # keys; as anyone else it stays who it is.
            "user " + pwd.getpwuid(os.getuid()).pw_name,
            "per_listener_settings false",
            "allow_anonymous false",
            "persistence true",
            "persistence_location " + store,
            "log_dest file " + os.path.join(root, "mosquitto.log"),
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            "acl_file " + acl,
            "listener %d %s" % (port, bind),
            "cafile " + os.path.join(pki, "ca.pem"),
            "certfile " + os.path.join(pki, "server.pem"),
            "keyfile " + os.path.join(pki, "server.key"),
            "require_certificate true",
            "use_identity_as_username true",
            "tls_version tlsv1.2",
            ""]))
    return conf


def mqtt_tls_args(root, port):
    pki = pki_dir(root)
    return ["-h", "127.0.0.1", "-p", str(port), "--cafile", os.path.join(pki, "ca.pem"),
            "--cert", os.path.join(pki, CLOUD_USER + ".pem"),
            "--key", os.path.join(pki, CLOUD_USER + ".key")]


class CloudHandler(http.server.BaseHTTPRequestHandler):
    root = None
    log_lock = threading.Lock()

    def log_message(self, fmt, *args):  # one line per request in https.log, nothing on stderr
        pass

    def record(self, status):
        with self.log_lock, open(os.path.join(self.root, "https.log"), "a") as out:
            out.write("%s %s %d\n" % (self.command, self.path, status))

    def answer(self, status, body=b"", content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.record(status)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        if url.path == "/redirect" and query.get("to"):
            return self.redirect(query["to"][0])  # to try a client's redirect rules
        match = re.match(r"^/volumes/([A-Za-z0-9._-]+)$", url.path)
        if not match or match.group(1).startswith("."):
            return self.answer(404, b"not found\n", "text/plain")
        path = os.path.join(self.root, "volumes", match.group(1))
        if not os.path.isfile(path):
            return self.answer(404, b"no such volume\n", "text/plain")
        with open(path, "rb") as data:
            body = data.read()
        if "unsized" not in query:
            return self.answer(200, body, "application/zip")
        # No Content-Length: the body ends when the connection closes (HTTP/1.0).
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.end_headers()
        self.wfile.write(body)
        self.record(200)

    def redirect(self, to):
        self.send_response(302)
        self.send_header("Location", to)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.record(302)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        url = urllib.parse.urlsplit(self.path)
        to = urllib.parse.parse_qs(url.query).get("to")
        if url.path == "/redirect" and to:
            return self.redirect(to[0])
        if self.path.split("?")[0] != REPORT_PATH:
            return self.answer(404, b"{}")
        # The device: the CN of the client certificate it presented, else the header it sends.
        device = None
        peer = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
        for field in (peer or {}).get("subject", ()):
            for key, value in field:
                if key == "commonName":
                    device = value
        device = device or self.headers.get("x-iot-edge-clientid", "")
        if not DEVICE_ID.match(device or ""):
            return self.answer(400, b'{"error":"unknown device"}')
        try:
            json.loads(body)
        except ValueError:
            return self.answer(400, b'{"error":"the report is not JSON"}')
        write_atomically(os.path.join(self.root, "reports", device + ".https.json"), body)
        self.answer(200, b"{}")


def serve_https(root, bind, port, require_client_cert):
    pki = pki_dir(root)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(os.path.join(pki, "server.pem"), os.path.join(pki, "server.key"))
    context.load_verify_locations(os.path.join(pki, "ca.pem"))
    # A device may present its certificate; with --require-client-cert it must.
    context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    handler = type("Handler", (CloudHandler,), {"root": root})
    server = http.server.ThreadingHTTPServer((bind, port), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


def collect_mqtt_reports(root, port, stop, running):
    """mosquitto_sub as the cloud: every device's report topic into reports/<device>.mqtt.json.
    `running` holds the current mosquitto_sub, which the caller ends when it stops (it would
    otherwise outlive the cloud, reconnecting for ever)."""
    topic = REPORT_TOPIC % "+"
    pattern = re.compile("^" + re.escape(REPORT_TOPIC).replace("%s", "([^/]+)") + "$")
    while not stop.is_set():
        sub = subprocess.Popen(["mosquitto_sub", *mqtt_tls_args(root, port), "-i", "cloud-reports",
                                "-q", "1", "-t", topic, "-F", "%t %p"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        running["sub"] = sub
        if stop.is_set():
            sub.terminate()
        for line in sub.stdout:
            name, _, payload = line.rstrip("\n").partition(" ")
            match = pattern.match(name)
            if match:
                write_atomically(os.path.join(root, "reports", match.group(1) + ".mqtt.json"),
                                 payload.encode())
        sub.wait()
        stop.wait(0.5)


def wait_for_port(port, timeout=10):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def cmd_serve(args):
    root = os.path.abspath(args.dir)
    if not os.path.exists(os.path.join(pki_dir(root), "server.pem")):
        fail("%s has no PKI: run 'cloud.py init %s' first" % (root, root))
    for sub in ("volumes", "reports"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    mqtt_port = args.mqtt_port or free_port(args.bind)
    https_port = args.https_port or free_port(args.bind)
    conf = write_mosquitto_conf(root, args.bind, mqtt_port)
    broker = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(root, "mosquitto.err"), "w"))
    stop = threading.Event()
    collecting = {}

    def shutdown(*_):
        stop.set()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    try:
        if not wait_for_port(mqtt_port):
            fail("mosquitto did not start (see %s/mosquitto.err and mosquitto.log)" % root)
        server = serve_https(root, args.bind, https_port, args.require_client_cert)
        collector = threading.Thread(target=collect_mqtt_reports,
                                     args=(root, mqtt_port, stop, collecting), daemon=True)
        collector.start()
        host = args.public_host or "127.0.0.1"
        state = {"mqtt": "ssl://%s:%d" % (host, mqtt_port),
                 "https": "https://%s:%d" % (host, https_port),
                 "mqtt_port": mqtt_port, "https_port": https_port, "pid": os.getpid()}
        write_atomically(os.path.join(root, "cloud.json"), json.dumps(state).encode())
        print("cloud: MQTT %s (mutual TLS), HTTPS %s; Ctrl-C stops" % (state["mqtt"],
                                                                      state["https"]), flush=True)
        while not stop.wait(0.5):
            if broker.poll() is not None:
                fail("mosquitto exited (see %s/mosquitto.log)" % root)
        server.shutdown()
    finally:
        stop.set()
        sub = collecting.get("sub")
        if sub is not None and sub.poll() is None:
            sub.terminate()
            sub.wait()
        if broker.poll() is None:
            broker.terminate()
            broker.wait()
        try:
            os.remove(os.path.join(root, "cloud.json"))
        except FileNotFoundError:
            pass


# ---- volumes and events -----------------------------------------------------------------------

def md5_base64(path):
    digest = hashlib.md5()
    with open(path, "rb") as data:
        for block in iter(lambda: data.read(1 << 16), b""):
            digest.update(block)
    return base64.b64encode(digest.digest()).decode()


def pack_dir(src, zip_path):
    """SRC's files and directories (file modes kept, links followed), in a stable order."""
    if not os.path.isdir(src):
        fail("%s is not a directory" % src)
    tmp = zip_path + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        for parent, dirs, files in os.walk(src, followlinks=True):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(parent, name)
                out.write(path, os.path.relpath(path, src))
            for name in dirs:
                path = os.path.join(parent, name)
                if not os.listdir(path):
                    out.write(path, os.path.relpath(path, src) + "/")
    os.replace(tmp, zip_path)


def cloud_state(root):
    try:
        with open(os.path.join(root, "cloud.json")) as data:
            return json.load(data)
    except FileNotFoundError:
        fail("the cloud in %s is not running: start 'cloud.py serve %s' first" % (root, root))


def make_volume(args, root):
    """Packs --dir (or takes --zip) into volumes/ and returns the event's volume object."""
    if not VOLUME_NAME.match(args.name):
        fail("volume name '%s' must match %s" % (args.name, VOLUME_NAME.pattern))
    os.makedirs(os.path.join(root, "volumes"), exist_ok=True)
    work = tempfile.mkdtemp(dir=os.path.join(root, "volumes"), prefix=".pack-")
    try:
        zip_path = os.path.join(work, "volume.zip")
        if args.zip:
            shutil.copyfile(args.zip, zip_path)
        else:
            pack_dir(args.dir_src, zip_path)
        md5 = md5_base64(zip_path)
        version = args.version or "c" + hashlib.md5(md5.encode()).hexdigest()[:8]
        file_name = "%s-%s.zip" % (args.name, version)
        os.replace(zip_path, os.path.join(root, "volumes", file_name))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return file_name, {"name": args.name,
                       "path": args.path or "var/db/baetyl/%s/%s" % (args.name, version),
                       "meta": {"url": None, "md5": md5, "version": version}}


def cmd_pack(args):
    file_name, volume = make_volume(args, args.dir)
    base = args.url_base
    if not base:
        try:
            with open(os.path.join(args.dir, "cloud.json")) as data:
                base = json.load(data)["https"]
        except FileNotFoundError:
            base = "https://127.0.0.1"
    volume["meta"]["url"] = "%s/volumes/%s" % (base.rstrip("/"), file_name)
    print(json.dumps(volume, indent=2))


def cmd_ota(args):
    root = args.dir
    state = cloud_state(root)
    file_name, volume = make_volume(args, root)
    volume["meta"]["url"] = args.url or "%s/volumes/%s" % (state["https"], file_name)
    if args.md5:
        volume["meta"]["md5"] = args.md5
    event = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": "OTA",
             "content": {"type": args.type, "trace": args.trace or str(uuid.uuid4()),
                         "version": args.app_version or volume["meta"]["version"],
                         "volume": volume}}
    payload = json.dumps(event)
    result = subprocess.run(["mosquitto_pub", *mqtt_tls_args(root, state["mqtt_port"]),
                             "-i", "cloud-events-%d" % os.getpid(), "-q", "1",
                             "-t", DESIRE_TOPIC % args.device, "-m", payload],
                            capture_output=True, text=True)
    if result.returncode != 0:
        fail("mosquitto_pub failed: " + (result.stderr.strip() or "exit %d" % result.returncode))
    print(json.dumps(event, indent=2))


def cmd_report(args):
    vias = [args.via] if args.via else ["mqtt", "https"]
    latest = None
    for via in vias:
        path = os.path.join(args.dir, "reports", "%s.%s.json" % (args.device, via))
        if os.path.exists(path) and (latest is None or os.path.getmtime(path) > latest[0]):
            latest = (os.path.getmtime(path), path, via)
    if latest is None:
        fail("no report from device %s yet" % args.device)
    with open(latest[1]) as data:
        report = json.load(data)
    print("# %s, received over %s at %s" % (latest[1], latest[2],
                                            time.strftime("%H:%M:%S", time.localtime(latest[0]))))
    if args.ota:
        report = report.get("ota", {})
    print(json.dumps(report, indent=2, sort_keys=True))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("init", help="create the CA, the server and cloud certificates")
    p.add_argument("dir")
    p.add_argument("--host", action="append", default=[],
                   help="another name or address of the cloud for its server certificate")
    p.add_argument("--device", action="append", default=[], help="also issue a device certificate")
    p.set_defaults(run=cmd_init)

    p = commands.add_parser("device", help="issue a device certificate (CN = client id)")
    p.add_argument("dir")
    p.add_argument("id")
    p.set_defaults(run=cmd_device)

    p = commands.add_parser("serve", help="run mosquitto (mutual TLS) and the HTTPS server")
    p.add_argument("dir")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--public-host", help="host name devices use in URLs (127.0.0.1)")
    p.add_argument("--mqtt-port", type=int, default=0, help="default: a free port")
    p.add_argument("--https-port", type=int, default=0, help="default: a free port")
    p.add_argument("--require-client-cert", action="store_true",
                   help="HTTPS refuses clients without a certificate of the cloud's CA")
    p.set_defaults(run=cmd_serve)

    def volume_args(p):
        p.add_argument("--name", required=True, help="the volume's name")
        p.add_argument("--version", help="the volume's version (default: from its MD5)")
        p.add_argument("--path", help="default: var/db/baetyl/<name>/<version>")

    p = commands.add_parser("pack", help="zip a directory into volumes/, print the volume")
    p.add_argument("dir")
    p.add_argument("dir_src", metavar="SRC")
    p.add_argument("--url-base", help="default: the running cloud's HTTPS address")
    volume_args(p)
    p.set_defaults(run=cmd_pack, zip=None)

    p = commands.add_parser("ota", help="send an OTA event to a device")
    p.add_argument("dir")
    p.add_argument("--device", required=True)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--dir", dest="dir_src", metavar="SRC", help="pack this directory")
    source.add_argument("--zip", help="send this zip as it is")
    p.add_argument("--type", choices=["APP", "MST"], default="APP")
    p.add_argument("--trace", help="default: a new UUID")
    p.add_argument("--app-version", help="the event's version (default: the volume's)")
    p.add_argument("--md5", help="send this MD5 instead of the zip's (to try a failure)")
    p.add_argument("--url", help="send this URL instead of the cloud's (to try a failure)")
    volume_args(p)
    p.set_defaults(run=cmd_ota)

    p = commands.add_parser("report", help="show the last report of a device")
    p.add_argument("dir")
    p.add_argument("--device", required=True)
    p.add_argument("--via", choices=["mqtt", "https"], help="default: the latest either way")
    p.add_argument("--ota", action="store_true", help="only the OTA progress")
    p.set_defaults(run=cmd_report)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
