"""The registrar: digest authentication against credentials an operator set with
`conclave admin set-sip-password`, driven by SIPp; registrations as session leases; and
identities without credentials kept out unless registration is open."""

import time

import pytest
import requests

from conftest import Server
from sip_support import (Sipp, free_udp_port, message_step, received_bodies, received_statuses,
                         register_step, scenario, wait_for)


@pytest.fixture
def closed_server(conclave_bin, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    # SIPp 3.6 speaks MD5 only and answers the first challenge: MD5 first.
    s = Server(conclave_bin, tmp_path / "data", logs,
               args=["--sip-min-expires", "1", "--sip-digest-algorithms", "md5,sha-256",
                     "--session-lease-secs", "2"])
    s.start()
    yield s
    s.stop()


def provision(server, tmp_path, account: str, user: str, password: str):
    r = requests.post(f"{server.url}/accounts", headers=server.admin(),
                      json={"account": account}, timeout=10)
    assert r.status_code == 201, r.text
    pw = tmp_path / f"{user}.pw"
    pw.write_text(password + "\n")
    out = server.cli("set-sip-password", "--account", account, "--address",
                     f"sip:{user}@localhost", "--password-file", str(pw))
    assert out.returncode == 0, out.stderr


def test_register_with_digest_and_wrong_passwords(closed_server, tmp_path):
    provision(closed_server, tmp_path, "acct-alice", "alice", "s3cret-pw")
    sipp = Sipp(closed_server, tmp_path / "sipp")
    # The right password: 401 challenge, then 200.
    trace = sipp.run(scenario("reg", register_step("alice", auth=True)),
                     extra=["-au", "alice", "-ap", "s3cret-pw"])
    statuses = received_statuses(trace)
    assert statuses[0].startswith("SIP/2.0 401") and statuses[-1].startswith("SIP/2.0 200"), statuses
    assert "algorithm=SHA-256" in trace and "algorithm=MD5" in trace
    # A wrong password is challenged again, never accepted.
    sipp.run(scenario("bad", register_step("alice", auth=True, expect=401)),
             extra=["-au", "alice", "-ap", "wrong"])
    # The wrong answer is journaled (once a minute per source), the first challenge not.
    def refusals():
        audit = requests.get(f"{closed_server.url}/audit?type=api_action_denied",
                             headers=closed_server.admin(), timeout=10).json()["entries"]
        return [(e["event"]["data"]["action"], e["event"]["data"]["code"]) for e in audit]
    wait_for(lambda: refusals(), "the refusal journaled")
    assert refusals() == [("sip_register", "digest.wrong_response")], refusals()
    # An identity without credentials is refused once it answers the challenge.
    sipp.run(scenario("nobody", register_step("mallory", auth=True, expect=403)),
             extra=["-au", "mallory", "-ap", "whatever"])
    # The hashes never show: the account lists the credential by realm and algorithms.
    acct = requests.get(f"{closed_server.url}/accounts/acct-alice", headers=closed_server.admin(),
                        timeout=10).json()
    assert "s3cret" not in str(acct)
    assert acct["sip_credentials"][0]["address"] == "sip:alice@localhost", acct


def test_messages_from_a_provisioned_identity_need_its_digest(closed_server, tmp_path):
    provision(closed_server, tmp_path, "acct-bob", "bob", "b0b-pass")
    sipp = Sipp(closed_server, tmp_path / "sipp")
    # Without credentials the MESSAGE is challenged; SIPp answers it; then 200 and a notice.
    listen = free_udp_port()
    listener = sipp.listen(1, listen)
    sipp.run(scenario("reg", register_step("bob", auth=True, contact_port=listen)),
             extra=["-au", "bob", "-ap", "b0b-pass"])
    sipp.run(scenario("create", message_step("bob", "chat-manager", "#create ops", 200, auth=True)),
             extra=["-au", "bob", "-ap", "b0b-pass", "-auth_uri", "chat-manager@localhost"])
    assert received_bodies(listener.wait()) == ["*** Room was created"]
    # Someone claiming to be Bob without the password gets nowhere.
    sipp.run(scenario("forged", message_step("bob", "chat-ops", "#destroy", 401)))
    assert requests.get(f"{closed_server.url}/rooms/ops", headers=closed_server.admin(),
                        timeout=10).status_code == 200


def test_an_expired_registration_ends_the_im_session(closed_server, tmp_path):
    provision(closed_server, tmp_path, "acct-carol", "carol", "c4rol-pass")
    sipp = Sipp(closed_server, tmp_path / "sipp")
    auth = ["-au", "carol", "-ap", "c4rol-pass"]
    listen = free_udp_port()
    listener = sipp.listen(1, listen)
    sipp.run(scenario("reg", register_step("carol", auth=True, contact_port=listen, expires=2)),
             extra=auth)
    sipp.run(scenario("join", message_step("carol", "chat-manager", "#create tea", 200, auth=True)),
             extra=auth + ["-auth_uri", "chat-manager@localhost"])
    listener.wait()
    def present():
        r = requests.get(f"{closed_server.url}/rooms/tea/members", headers=closed_server.admin(),
                         timeout=10)
        return r.status_code == 200 and any(m["principal"].endswith("acct-carol") or
                                            "carol" in m["principal"] for m in r.json()["members"])
    assert present()
    deadline = time.monotonic() + 10
    while present() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not present(), "the IM session outlived its registration"
    audit = requests.get(f"{closed_server.url}/audit?room=tea", headers=closed_server.admin(),
                         timeout=10).json()["entries"]
    leaves = [e["event"]["data"]["reason"] for e in audit if e["event_type"] == "room_leave"]
    assert leaves == ["lease_expired"], leaves
    # Her room stays: a lapsed registration is not its owner's #exit.
    assert requests.get(f"{closed_server.url}/rooms/tea", headers=closed_server.admin(),
                        timeout=10).status_code == 200


def test_password_guessing_is_throttled_per_address(closed_server, tmp_path):
    provision(closed_server, tmp_path, "acct-dora", "dora", "d0ra-pass")
    sipp = Sipp(closed_server, tmp_path / "sipp")
    # Twenty wrong answers from one address, then even the right password is refused
    # for the rest of the minute.
    for i in range(20):
        sipp.run(scenario(f"guess{i}", register_step("dora", auth=True, expect=401)),
                 extra=["-au", "dora", "-ap", f"guess-{i}"])
    trace = sipp.run(scenario("right", register_step("dora", expect=403)))
    assert "too many failed authentications" in trace


def test_a_restart_ends_the_previous_runs_sip_sessions(sip_server, tmp_path):
    """Dialogs and bindings live in memory: at start the gateway ends the sessions its
    previous run held, journaled as gateway_restarted, instead of leaving ghosts."""
    sipp = Sipp(sip_server, tmp_path / "sipp")
    sipp.run(scenario("join", message_step("uma", "chat-manager", "#create den", 200)))
    r = requests.get(f"{sip_server.url}/rooms/den/members", headers=sip_server.admin(), timeout=10)
    assert "sip:uma@localhost" in str(r.json())
    sip_server.stop()
    sip_server.start()
    r = requests.get(f"{sip_server.url}/rooms/den/members", headers=sip_server.admin(), timeout=10)
    # The room stays (a restart is not its owner's #exit); its SIP member is gone.
    assert r.status_code == 200, r.text
    assert "sip:uma@localhost" not in str(r.json()), r.json()
    audit = requests.get(f"{sip_server.url}/audit?room=den", headers=sip_server.admin(),
                         timeout=10).json()["entries"]
    leaves = [e["event"]["data"]["reason"] for e in audit if e["event_type"] == "room_leave"]
    assert leaves == ["gateway_restarted"], leaves
