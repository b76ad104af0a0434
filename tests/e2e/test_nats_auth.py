"""The NATS gateway against a secured nats-server: user and password (with the
permissions example of docs/nats.md, run as written there), a token, and TLS with a
client certificate (a CA made here with the openssl command). For each: `conclave nats
setup` and `conclave serve` connect and publish, and nats-py reads the events with
allowed credentials; with wrong credentials the server keeps serving and says why
(log line, /about/health, /metrics) instead of hanging; and a subscriber restricted as
the docs say cannot publish to, or listen on, `conclave.cmd.>`.

nkey seeds and credentials files are tested without the `nk`/`nsc` tools: option
building and parsing in the gateway's unit tests, and nkey authentication against a
real nats-server in gateways/nats/tests/auth.rs."""

import asyncio
import json
import re
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import nats
import pytest
import requests

from nats_support import TOKEN, Conclave, NatsServer, nats_server_binary

pytestmark = pytest.mark.skipif(
    nats_server_binary() is None, reason="nats-server is not installed (apt-get install nats-server)")

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"CONCLAVE_NATS_PASSWORD": "conclave-pw-0123", "READER_NATS_PASSWORD": "reader-pw-4567",
             "CRM_NATS_PASSWORD": "crm-pw-89ab"}


def docs_example(port: int, store: Path) -> str:
    """The nats-server configuration example of docs/nats.md, on this port and store."""
    text = (ROOT / "docs" / "nats.md").read_text()
    m = re.search(r"```\n(# conclave-nats-permissions-example\n.*?)```", text, re.S)
    assert m, "docs/nats.md lost its permissions example"
    conf = m.group(1)
    assert "listen: 127.0.0.1:4222" in conf and "store_dir: /var/lib/nats" in conf
    return (conf.replace("listen: 127.0.0.1:4222", f"listen: 127.0.0.1:{port}")
            .replace("store_dir: /var/lib/nats", f'store_dir: "{store}"'))


def secret_file(path: Path, value: str) -> str:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return str(path)


def start_nats(tmp_path: Path, config_for) -> NatsServer:
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    ns = NatsServer(tmp_path / "nats-store", logs, env=PASSWORDS)
    ns.config = config_for(ns.port, ns.store)
    ns.start()
    return ns


def health(c: Conclave) -> dict:
    return requests.get(f"{c.url}/about/health", timeout=5).json()["sources"]["nats"]


def wait_for(pred, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def create_room_over_http(c: Conclave, room: str) -> None:
    r = requests.post(f"{c.url}/rooms", json={"room": room, "as": "web:alice"}, timeout=10)
    assert r.status_code == 201, r.text


async def read_events(connect: dict, want: int, timeout: float = 20.0) -> list:
    """Reads the stream from the start with an ordered consumer, as `connect` allows."""
    nc = await nats.connect(**connect)
    got = []

    async def on_event(msg):
        got.append((int(msg.headers["Conclave-Seq"]), json.loads(msg.data)))

    sub = await nc.jetstream().subscribe("conclave.events.>", cb=on_event,
                                          ordered_consumer=True, idle_heartbeat=0.5)
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await sub.unsubscribe()
    await nc.close()
    return got


def assert_refused_and_reported(c: Conclave, code: str, words: str, secret: str | None):
    """The server keeps serving HTTP and reports the NATS failure instead of hanging."""
    h = wait_for(lambda: (lambda h: h if h["last_error"] and h["last_error"]["code"] == code
                          else None)(health(c)), f"last_error {code}")
    assert h["connected"] is False and h["status"] == "degraded", h
    assert words in h["last_error"]["message"], h
    r = requests.get(f"{c.url}/about/health", timeout=5)
    assert r.status_code == 200, r.text
    metrics = requests.get(f"{c.url}/metrics", timeout=5).text
    assert "conclave_nats_connected 0" in metrics, metrics
    # Still serving: a room created over HTTP is journaled and waits in the outbox.
    create_room_over_http(c, "while-refused")
    wait_for(lambda: health(c)["lag"] > 0, "a growing lag")
    log = wait_for(lambda: c.stderr() if words in c.stderr() else None, "the log line")
    assert code in log
    if secret:
        assert secret not in log and secret not in json.dumps(h)


# --- user and password, with the permissions example of docs/nats.md -----------------

@pytest.fixture
def secured(tmp_path):
    ns = start_nats(tmp_path, docs_example)
    yield ns, tmp_path
    ns.kill()


def test_user_password_connects_publishes_and_the_docs_permissions_hold(conclave_bin, secured):
    ns, tmp = secured
    pw = secret_file(tmp / "conclave-nats-password", PASSWORDS["CONCLAVE_NATS_PASSWORD"])
    conn = ["--nats-user", "conclave", "--nats-password-file", pw]
    c = Conclave(conclave_bin, tmp / "data", tmp / "logs", ns.url, extra_args=conn)
    # Setup runs as the Conclave user: the example grants it the stream's API.
    summary = c.setup_stream(*conn)
    assert summary["stream"] == "CONCLAVE_EVENTS"
    c.start()
    try:
        asyncio.run(permissions_scenario(ns, c))
    finally:
        c.stop()


async def permissions_scenario(ns: NatsServer, c: Conclave):
    # A command service (its own user and inbox prefix) creates a room.
    crm = await nats.connect(ns.url, user="crm", password=PASSWORDS["CRM_NATS_PASSWORD"],
                             inbox_prefix="_INBOX_crm")
    reply = None
    for _ in range(100):
        try:
            msg = await crm.request("conclave.cmd.create_room", json.dumps(
                {"room": "secured", "private": False, "owner": "sip:alice@example.org"}).encode(),
                timeout=10, headers={"Conclave-Token": TOKEN})
            reply = json.loads(msg.data)
            break
        except nats.errors.NoRespondersError:
            await asyncio.sleep(0.05)
    assert reply and reply["ok"], reply
    await crm.close()
    await asyncio.to_thread(c.wait_nats, lambda h: h["connected"] and h["lag"] == 0)

    # The reader reads every event (ordered consumer), and a durable pull consumer works.
    reader = {"servers": ns.url, "user": "reader", "password": PASSWORDS["READER_NATS_PASSWORD"],
              "inbox_prefix": "_INBOX_reader"}
    head = health(c)["head"]
    got = await read_events(reader, head)
    assert [s for s, _ in got] == list(range(1, head + 1))
    assert any(e["data"]["type"] == "room_create" and e["data"]["actor"] == "service:e2e-bot"
               for _, e in got), got

    errors = []

    async def on_error(e):
        errors.append(str(e))

    nc = await nats.connect(**reader, error_cb=on_error)
    js = nc.jetstream()
    psub = await js.pull_subscribe("conclave.events.>", durable="reader-pull")
    msgs = await psub.fetch(1, timeout=10)
    assert msgs[0].headers["Conclave-Seq"] == "1"
    await msgs[0].ack()
    first = await js.get_msg("CONCLAVE_EVENTS", seq=1)
    assert first.headers["Conclave-Seq"] == "1"

    # ...but cannot send commands, see requests (and their tokens) or others' answers,
    # nor forge events.
    before = requests.get(f"{c.url}/metrics", timeout=5).text
    await nc.publish("conclave.cmd.create_room", b'{"room":"forged","private":false}',
                     headers={"Conclave-Token": TOKEN})
    await nc.subscribe("conclave.cmd.>")
    await nc.subscribe("_INBOX.>")
    await nc.publish("conclave.events.room.x.room_create", b"{}")
    await nc.flush()
    await asyncio.sleep(0.5)
    joined = "\n".join(errors)
    assert 'permissions violation for publish to "conclave.cmd.create_room"' in joined, errors
    assert 'permissions violation for subscription to "conclave.cmd.>"' in joined, errors
    assert 'permissions violation for subscription to "_inbox.>"' in joined.lower(), errors
    assert 'permissions violation for publish to "conclave.events.room.x.room_create"' in joined
    await nc.close()
    after = requests.get(f"{c.url}/metrics", timeout=5).text
    commands = re.compile(r"^conclave_nats_commands_total (\d+)$", re.M)
    assert commands.search(before).group(1) == commands.search(after).group(1) == "1"
    r = requests.get(f"{c.url}/rooms/forged", headers=c.admin(), timeout=10)
    assert r.status_code == 404, r.text
    # The Conclave user's own grants were enough: no permissions error on its side.
    h = health(c)
    assert h["connected"] and h["lag"] == 0, h
    assert not h["last_error"] or h["last_error"]["code"] != "nats.permissions", h


def test_wrong_password_is_reported_not_hung(conclave_bin, secured):
    ns, tmp = secured
    wrong = "not-the-password-42"
    pw = secret_file(tmp / "wrong-password", wrong)
    conn = ["--nats-user", "conclave", "--nats-password-file", pw]
    c = Conclave(conclave_bin, tmp / "data", tmp / "logs", ns.url, extra_args=conn)
    started = time.monotonic()
    out = c.run_setup(*conn)
    assert out.returncode != 0 and time.monotonic() - started < 15, out
    assert "authorization violation" in out.stderr, out.stderr
    assert wrong not in out.stderr
    c.start(wait_connected=False)
    try:
        assert_refused_and_reported(
            c, "nats.auth",
            'refused the credentials (user "conclave" with a password): authorization violation',
            wrong)
    finally:
        c.stop()


# --- token -------------------------------------------------------------------------------

NATS_TOKEN = "nats-server-token-0123456789"


def token_config(port: int, store: Path) -> str:
    return (f'listen: 127.0.0.1:{port}\njetstream {{ store_dir: "{store}" }}\n'
            f'authorization {{ token: "{NATS_TOKEN}" }}\n')


@pytest.fixture
def token_server(tmp_path):
    ns = start_nats(tmp_path, token_config)
    yield ns, tmp_path
    ns.kill()


def test_token_from_the_environment(conclave_bin, token_server):
    ns, tmp = token_server
    tok = secret_file(tmp / "nats-token", NATS_TOKEN)
    # The environment form of the settings: CONCLAVE_NATS_TOKEN_FILE.
    c = Conclave(conclave_bin, tmp / "data", tmp / "logs", ns.url,
                 extra_env={"CONCLAVE_NATS_TOKEN_FILE": tok})
    c.setup_stream()
    c.start()
    try:
        create_room_over_http(c, "token-room")
        c.wait_nats(lambda h: h["connected"] and h["lag"] == 0)
        head = health(c)["head"]
        got = asyncio.run(read_events({"servers": ns.url, "token": NATS_TOKEN}, head))
        assert [s for s, _ in got] == list(range(1, head + 1))
        assert any(e["data"]["type"] == "room_create" for _, e in got)
    finally:
        c.stop()


def test_wrong_token_is_reported_not_hung(conclave_bin, token_server):
    ns, tmp = token_server
    c = Conclave(conclave_bin, tmp / "data", tmp / "logs", ns.url,
                 extra_args=["--nats-token", "wrong-token-wrong-token"])
    c.start(wait_connected=False)
    try:
        assert_refused_and_reported(c, "nats.auth", "refused the credentials (a token)",
                                    "wrong-token-wrong-token")
    finally:
        c.stop()


# --- TLS with a client certificate -------------------------------------------------------

def openssl(*args: str, cwd: Path) -> None:
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def make_ca(d: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
            "-subj", f"/CN=Conclave e2e {name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def make_cert(d: Path, ca: str, name: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext + "\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-set_serial", str(int(time.time() * 1000)), "-days", "2",
            "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)


@pytest.fixture
def tls_server(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed: cannot make a test CA")
    pki = tmp_path / "pki"
    pki.mkdir()
    make_ca(pki, "ca")
    make_ca(pki, "other-ca")
    make_cert(pki, "ca", "server", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
              "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE")
    make_cert(pki, "ca", "client", "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE")
    for key in pki.glob("*.key"):
        key.chmod(0o600)

    def config(port: int, store: Path) -> str:
        return (f'listen: 127.0.0.1:{port}\njetstream {{ store_dir: "{store}" }}\n'
                f'tls {{\n  cert_file: "{pki}/server.pem"\n  key_file: "{pki}/server.key"\n'
                f'  ca_file: "{pki}/ca.pem"\n  verify: true\n  timeout: 5\n}}\n')

    ns = start_nats(tmp_path, config)
    yield ns, tmp_path, pki
    ns.kill()


def conclave_toml(path: Path, pki: Path, ca: str) -> str:
    """The file form of the settings: [nats] tls_* keys."""
    path.write_text(f'[nats]\ntls_ca_file = "{pki}/{ca}.pem"\n'
                    f'tls_cert_file = "{pki}/client.pem"\ntls_key_file = "{pki}/client.key"\n')
    return str(path)


def test_tls_with_a_client_certificate(conclave_bin, tls_server):
    ns, tmp, pki = tls_server
    c = Conclave(conclave_bin, tmp / "data", tmp / "logs", ns.url,
                 extra_args=["--config", conclave_toml(tmp / "conclave.toml", pki, "ca")])
    c.setup_stream("--nats-tls-ca-file", f"{pki}/ca.pem", "--nats-tls-cert-file",
                   f"{pki}/client.pem", "--nats-tls-key-file", f"{pki}/client.key")
    c.start()
    try:
        create_room_over_http(c, "tls-room")
        c.wait_nats(lambda h: h["connected"] and h["lag"] == 0)
        ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        ctx.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
        head = health(c)["head"]
        got = asyncio.run(read_events(
            {"servers": f"tls://127.0.0.1:{ns.port}", "tls": ctx}, head))
        assert [s for s, _ in got] == list(range(1, head + 1))
        assert any(e["data"]["type"] == "room_create" for _, e in got)
    finally:
        c.stop()


def test_untrusted_server_certificate_is_reported_not_hung(conclave_bin, tls_server):
    ns, tmp, pki = tls_server
    # Trusts another CA than the one that signed the server's certificate.
    c = Conclave(conclave_bin, tmp / "data", tmp / "logs", ns.url,
                 extra_args=["--config", conclave_toml(tmp / "conclave.toml", pki, "other-ca")])
    out = c.run_setup("--nats-tls-ca-file", f"{pki}/other-ca.pem")
    assert out.returncode != 0 and "UnknownIssuer" in out.stderr, out.stderr
    c.start(wait_connected=False)
    try:
        assert_refused_and_reported(c, "nats.tls", "UnknownIssuer", None)
    finally:
        c.stop()


def test_tls_required_against_a_server_without_tls(conclave_bin, token_server):
    ns, tmp = token_server
    c = Conclave(conclave_bin, tmp / "data", tmp / "logs", ns.url,
                 extra_args=["--nats-token", NATS_TOKEN, "--nats-tls-required", "true"])
    c.start(wait_connected=False)
    try:
        # The client starts TLS after the server's INFO, before sending CONNECT (and the
        # token): the plaintext server sees garbage, the handshake fails.
        h = wait_for(lambda: (lambda h: h if h["last_error"] and
                              h["last_error"]["code"] == "nats.tls" else None)(health(c)),
                     "a TLS error")
        assert not h["connected"], h
        assert "TLS handshake" in h["last_error"]["message"], h
        time.sleep(0.5)
        assert not health(c)["connected"]
        assert NATS_TOKEN not in c.stderr()
    finally:
        c.stop()


def test_bad_secret_files_stop_the_server_with_the_setting_named(conclave_bin, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    c = Conclave(conclave_bin, tmp_path / "data", logs, "nats://127.0.0.1:1",
                 extra_args=["--nats-user", "conclave",
                             "--nats-password-file", str(tmp_path / "absent")])
    with pytest.raises(RuntimeError) as e:
        c.start(timeout=30)
    assert "NATS password: cannot read" in str(e.value), str(e.value)
    c2 = Conclave(conclave_bin, tmp_path / "data", logs, "nats://127.0.0.1:1",
                  extra_args=["--nats-token", "t", "--nats-user", "u", "--nats-password", "p"])
    with pytest.raises(RuntimeError) as e:
        c2.start(timeout=30)
    assert "configure one way to authenticate" in str(e.value), str(e.value)
