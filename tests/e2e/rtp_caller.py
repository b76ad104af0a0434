"""A small SIP caller with RTP for the audio tests: INVITE/ACK/BYE over UDP, G.711
mu-law at 20 ms, a tone of its own, and what it hears kept with arrival times so a test
can measure, per 20 ms frame, which tones are in it (Goertzel filter)."""

import math
import random
import re
import socket
import struct
import threading
import time

RATE = 8000
FRAME = 160  # 20 ms


def _ulaw_encode_sample(s: int) -> int:
    BIAS, CLIP = 0x84, 32635
    sign = 0x80 if s < 0 else 0
    if s < 0:
        s = -s
    s = min(s, CLIP) + BIAS
    exponent, mask = 7, 0x4000
    while exponent > 0 and not (s & mask):
        exponent -= 1
        mask >>= 1
    mantissa = (s >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _ulaw_decode_sample(u: int) -> int:
    u = ~u & 0xFF
    sign, exponent, mantissa = u & 0x80, (u >> 4) & 0x07, u & 0x0F
    s = ((mantissa << 3) + 0x84) << exponent
    s -= 0x84
    return -s if sign else s


ULAW_DECODE = [_ulaw_decode_sample(u) for u in range(256)]


def goertzel(samples, freq: float, rate: int = RATE) -> float:
    """Power of `freq` in `samples` (sampled at `rate`), normalised by length."""
    n = len(samples)
    if n == 0:
        return 0.0
    k = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + k * s1 - s2
        s2, s1 = s1, s0
    return (s1 * s1 + s2 * s2 - k * s1 * s2) / (n * n)


class Caller:
    def __init__(self, user: str, sip_port: int, domain: str = "localhost", tone: float = 500.0,
                 amplitude: int = 6000):
        self.user, self.domain, self.tone, self.amplitude = user, domain, tone, amplitude
        self.server = ("127.0.0.1", sip_port)
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind(("127.0.0.1", 0))
        self.sip.settimeout(5)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.rtp.settimeout(0.2)
        self.call_id = f"{random.getrandbits(64):x}@rtp-caller"
        self.tag = f"{random.getrandbits(32):x}"
        self.cseq = 1
        self.remote_tag = None
        self.media_to = None
        self.heard = []  # (arrival monotonic time, [samples])
        self.sent_frames = 0
        self._stop = threading.Event()
        self._threads = []
        self.last_status = None

    # --- SIP ---
    def _request(self, method: str, ruri: str, body: str = "", extra: str = "",
                 to_tag: str | None = None, branch: str | None = None) -> str:
        lp = self.sip.getsockname()[1]
        to = f"<{ruri}>" + (f";tag={to_tag}" if to_tag else "")
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        branch = branch or f"z9hG4bK{random.getrandbits(48):x}"
        self.last_branch = branch
        return (f"{method} {ruri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{lp};branch={branch};rport\r\n"
                f"Max-Forwards: 70\r\n"
                f"From: <sip:{self.user}@{self.domain}>;tag={self.tag}\r\n"
                f"To: {to}\r\nCall-ID: {self.call_id}\r\nCSeq: {self.cseq} {method}\r\n"
                f"Contact: <sip:{self.user}@127.0.0.1:{lp}>\r\n{extra}{ctype}"
                f"Content-Length: {len(body.encode())}\r\n\r\n{body}")

    def _send(self, text: str):
        self.sip.sendto(text.encode(), self.server)

    def _final(self, deadline: float = 10.0) -> tuple[int, str]:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            data, _ = self.sip.recvfrom(65535)
            text = data.decode(errors="replace")
            m = re.match(r"SIP/2\.0 (\d{3})", text)
            if not m:
                # A request from the server (a MESSAGE notice): answer 200.
                self._answer_request(text)
                continue
            code = int(m.group(1))
            if code >= 200:
                return code, text
        raise TimeoutError("no final response")

    def _answer_request(self, text: str):
        head = text.split("\r\n\r\n", 1)[0].split("\r\n")
        keep = [h for h in head[1:] if re.match(r"(?i)(via|from|to|call-id|cseq):", h)]
        self._send("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n")
        if head and head[0].startswith("BYE "):
            self._stop.set()

    def invite(self, room_user: str) -> int:
        """Calls `room_user`; on 200 sends ACK and starts the media. Returns the status."""
        ruri = f"sip:{room_user}@{self.domain}"
        self.ruri = ruri
        rp = self.rtp.getsockname()[1]
        sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               f"m=audio {rp} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
               "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n")
        self._send(self._request("INVITE", ruri, sdp))
        invite_branch = self.last_branch
        code, text = self._final()
        self.last_status = code
        if code != 200:
            # ACK for a failure: same branch as the INVITE (RFC 3261 §17.1.1.3).
            self._ack(ruri, text, invite_branch)
            return code
        m = re.search(r"(?im)^To:.*;tag=([^;\s]+)", text)
        self.remote_tag = m.group(1) if m else None
        ip = re.search(r"(?m)^c=IN IP4 (\S+)", text).group(1)
        port = int(re.search(r"(?m)^m=audio (\d+)", text).group(1))
        self.media_to = (ip, port)
        self._ack(ruri, text)
        self._start_media()
        return code

    def reinvite(self, direction: str = "sendonly") -> int:
        """A re-INVITE in the dialog with `a=<direction>` (sendonly: hold); returns the
        status and ACKs it."""
        self.cseq += 1
        rp = self.rtp.getsockname()[1]
        sdp = ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               f"m=audio {rp} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
               f"a=rtpmap:101 telephone-event/8000\r\na={direction}\r\n")
        self._send(self._request("INVITE", self.ruri, sdp, to_tag=self.remote_tag))
        code, text = self._final()
        self._ack(self.ruri, text)
        return code

    def _ack(self, ruri: str, response: str, branch: str | None = None):
        m = re.search(r"(?im)^To:.*;tag=([^;\s]+)", response)
        tag = m.group(1) if m else None
        self._send(self._request("ACK", ruri, to_tag=tag, branch=branch))

    def bye(self) -> int:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        self.cseq += 1
        self._send(self._request("BYE", self.ruri, to_tag=self.remote_tag))
        code, _ = self._final()
        return code

    def close(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        self.sip.close()
        self.rtp.close()

    # --- RTP ---
    def _start_media(self):
        for fn in (self._sender, self._receiver):
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self._threads.append(t)

    def _sender(self):
        ssrc = random.getrandbits(32)
        seq, ts = random.getrandbits(16), random.getrandbits(32)
        start, n = time.monotonic(), 0
        phase = 0.0
        step = 2 * math.pi * self.tone / RATE
        while not self._stop.is_set():
            payload = bytearray(FRAME)
            for i in range(FRAME):
                payload[i] = _ulaw_encode_sample(int(self.amplitude * math.sin(phase)))
                phase += step
            header = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
            try:
                self.rtp.sendto(header + bytes(payload), self.media_to)
            except OSError:
                return
            seq, ts, n = seq + 1, ts + FRAME, n + 1
            self.sent_frames = n
            delay = start + n * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def send_dtmf(self, digit: str, pt: int = 101):
        """One RFC 4733 key press: three packets of the event, then three end packets,
        all with one timestamp (as phones send them)."""
        event = "0123456789*#".index(digit)
        ssrc = random.getrandbits(32)
        seq, ts = random.getrandbits(16), random.getrandbits(32)
        for i in range(6):
            end = 0x80 if i >= 3 else 0
            duration = 160 * (i + 1) if i < 3 else 480
            header = struct.pack("!BBHII", 0x80, (0x80 if i == 0 else 0) | pt, (seq + i) & 0xFFFF,
                                 ts & 0xFFFFFFFF, ssrc)
            payload = struct.pack("!BBH", event, end | 10, duration)
            self.rtp.sendto(header + payload, self.media_to)
            time.sleep(0.02)

    def _receiver(self):
        while not self._stop.is_set():
            try:
                data, _ = self.rtp.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 12:
                continue
            cc = data[0] & 0x0F
            pt = data[1] & 0x7F
            if pt != 0:
                continue
            payload = data[12 + 4 * cc:]
            self.heard.append((time.monotonic(), [ULAW_DECODE[b] for b in payload]))

    # --- analysis ---
    def hears(self, freq: float, since: float, until: float | None = None) -> float:
        """Goertzel power of `freq` in what arrived in [since, until)."""
        samples = [s for (t, frame) in self.heard if t >= since and (until is None or t < until)
                   for s in frame]
        return goertzel(samples, freq)

    def frames_after(self, since: float):
        return [(t, f) for (t, f) in self.heard if t >= since]
