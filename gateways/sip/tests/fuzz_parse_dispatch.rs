//! Fuzz harness: real SIP messages (tests/fixtures/sip), mutated, through parse and the
//! transaction layer over UDP and the TCP framer. Asserts no panic and bounded state.
//!
//! - `cargo test -p conclave-gateway-sip --test fuzz_parse_dispatch`: a proptest run
//!   (`SIP_FUZZ_CASES`, default 2000 cases of up to 8 messages each).
//! - The long run: `SIP_FUZZ_CASES=5000000 cargo test --release -p conclave-gateway-sip
//!   --test fuzz_parse_dispatch -- --ignored --nocapture` prints the count and the time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use conclave_gateway_sip::transaction::{Output, Peer, TimerConfig, TransactionLayer};
use conclave_gateway_sip::wire::{self, StreamFramer};
use proptest::prelude::*;

mod common;

use common::{fixture, FIXTURES};

const MAX_TX: usize = 32;

fn corpus() -> Vec<Vec<u8>> {
    FIXTURES.iter().map(|name| fixture(name)).collect()
}

/// One mutation of a message.
#[derive(Debug, Clone)]
enum Op {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    DuplicateLine(usize),
    RemoveLine(usize),
    SwapLines(usize, usize),
    HugeHeader(usize),
    ManyHeaders(usize),
    ContentLength(String),
    Splice(usize, usize, usize, usize),
    Insert(usize, Vec<u8>),
    NewBranch(u64),
}

const INTERESTING: &[u8] = b"\0\r\n :;,<>\"\\\t\xff\x7f=@";

fn lines(msg: &[u8]) -> Vec<Vec<u8>> {
    msg.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
}

fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    lines.join(&b'\n')
}

fn apply(corpus: &[Vec<u8>], mut msg: Vec<u8>, op: &Op) -> Vec<u8> {
    let len = msg.len().max(1);
    match op {
        Op::Flip(at, x) => {
            if let Some(b) = msg.get_mut(at % len) {
                *b ^= x;
            }
        }
        Op::Set(at, i) => {
            let v = INTERESTING
                .get(usize::from(*i) % INTERESTING.len())
                .copied()
                .unwrap_or(0);
            if let Some(b) = msg.get_mut(at % len) {
                *b = v;
            }
        }
        Op::Truncate(at) => msg.truncate(at % len),
        Op::DuplicateLine(i) => {
            let mut ls = lines(&msg);
            let i = i % ls.len().max(1);
            if let Some(l) = ls.get(i).cloned() {
                ls.insert(i, l);
            }
            msg = join(&ls);
        }
        Op::RemoveLine(i) => {
            let mut ls = lines(&msg);
            if !ls.is_empty() {
                let i = i % ls.len();
                ls.remove(i);
            }
            msg = join(&ls);
        }
        Op::SwapLines(i, j) => {
            let mut ls = lines(&msg);
            let n = ls.len().max(1);
            if ls.len() > 1 {
                ls.swap(i % n, j % n);
            }
            msg = join(&ls);
        }
        Op::HugeHeader(n) => {
            let mut ls = lines(&msg);
            let mut h = b"X-Huge: ".to_vec();
            h.extend(std::iter::repeat_n(b'a', n % 70_000));
            h.push(b'\r');
            ls.insert(1.min(ls.len()), h);
            msg = join(&ls);
        }
        Op::ManyHeaders(n) => {
            let mut ls = lines(&msg);
            let via = ls
                .iter()
                .find(|l| l.starts_with(b"Via"))
                .cloned()
                .unwrap_or_default();
            for _ in 0..(n % 400) {
                ls.insert(1.min(ls.len()), via.clone());
            }
            msg = join(&ls);
        }
        Op::ContentLength(v) => {
            let ls: Vec<Vec<u8>> = lines(&msg)
                .into_iter()
                .map(|l| {
                    if l.starts_with(b"Content-Length") {
                        format!("Content-Length: {v}\r").into_bytes()
                    } else {
                        l
                    }
                })
                .collect();
            msg = join(&ls);
        }
        Op::Splice(other, from, to, at) => {
            let src = corpus
                .get(other % corpus.len().max(1))
                .cloned()
                .unwrap_or_default();
            let n = src.len().max(1);
            let (a, b) = (from % n, to % n);
            let chunk = src.get(a.min(b)..a.max(b)).unwrap_or_default();
            let at = at % (msg.len() + 1);
            msg.splice(at..at, chunk.iter().copied());
        }
        Op::Insert(at, bytes) => {
            let at = at % (msg.len() + 1);
            msg.splice(at..at, bytes.iter().copied());
        }
        Op::NewBranch(n) => {
            let s = String::from_utf8_lossy(&msg)
                .replace("branch=z9hG4bK", &format!("branch=z9hG4bK{n:x}"));
            msg = s.into_bytes();
        }
    }
    msg
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Op::Flip(a, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Op::Set(a, b)),
        any::<usize>().prop_map(Op::Truncate),
        any::<usize>().prop_map(Op::DuplicateLine),
        any::<usize>().prop_map(Op::RemoveLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::SwapLines(a, b)),
        (0usize..70_000).prop_map(Op::HugeHeader),
        (0usize..400).prop_map(Op::ManyHeaders),
        prop_oneof![
            Just("99999999999999999999".to_string()),
            Just("-1".to_string()),
            Just(String::new()),
            Just("0".to_string()),
            (0u32..100_000).prop_map(|n| n.to_string()),
        ]
        .prop_map(Op::ContentLength),
        (
            any::<usize>(),
            any::<usize>(),
            any::<usize>(),
            any::<usize>()
        )
            .prop_map(|(a, b, c, d)| Op::Splice(a, b, c, d)),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 0..16)
        )
            .prop_map(|(a, b)| Op::Insert(a, b)),
        any::<u64>().prop_map(Op::NewBranch),
    ]
}

/// A tiny deterministic generator for the long run (proptest's machinery is the
/// bottleneck at millions of cases).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> usize {
        usize::try_from(self.next() % n.max(1)).unwrap_or(0)
    }
    fn op(&mut self) -> Op {
        let a = self.below(u64::MAX);
        let b = self.below(u64::MAX);
        match self.below(12) {
            0 => Op::Flip(a, self.next() as u8),
            1 => Op::Set(a, self.next() as u8),
            2 => Op::Truncate(a),
            3 => Op::DuplicateLine(a),
            4 => Op::RemoveLine(a),
            5 => Op::SwapLines(a, b),
            6 => Op::HugeHeader(if self.below(8) == 0 {
                self.below(70_000)
            } else {
                self.below(9_000)
            }),
            7 => Op::ManyHeaders(self.below(400)),
            8 => Op::ContentLength(match self.below(4) {
                0 => "99999999999999999999".into(),
                1 => "-1".into(),
                2 => String::new(),
                _ => self.below(2_000).to_string(),
            }),
            9 => Op::Splice(a, b, self.below(u64::MAX), self.below(u64::MAX)),
            10 => Op::Insert(a, (0..self.below(16)).map(|_| self.next() as u8).collect()),
            _ => Op::NewBranch(self.next()),
        }
    }
}

/// Drives one layer and one TCP framer; acts as a TU that answers what it is given.
struct Harness {
    layer: TransactionLayer,
    framer: StreamFramer,
    now: Instant,
    udp: Peer,
    tcp: Peer,
    answered: u64,
}

impl Harness {
    fn new() -> Self {
        let addr: SocketAddr = SocketAddr::from(([192, 0, 2, 10], 5060));
        Self {
            layer: TransactionLayer::new(TimerConfig {
                max_transactions: MAX_TX,
                ..TimerConfig::default()
            }),
            framer: StreamFramer::new(),
            now: Instant::now(),
            udp: Peer::udp(addr),
            tcp: Peer::tcp(addr, 1),
            answered: 0,
        }
    }

    fn feed(&mut self, msg: &[u8], split: usize) {
        let _ = self.layer.handle_datagram(self.now, self.udp, msg);
        self.drain();
        let (a, b) = msg.split_at(split % (msg.len() + 1));
        for chunk in [a, b] {
            self.framer.push(chunk);
            while let Some(next) = self.framer.next() {
                match next {
                    Ok(m) => self.layer.handle_message(self.now, self.tcp, m),
                    Err(rejected) => {
                        if let Some(answer) = rejected.answer {
                            self.layer.send_raw(self.tcp, answer);
                        }
                    }
                }
                self.drain();
            }
        }
        if self.framer.is_closed() {
            self.framer = StreamFramer::new();
        }
        assert!(self.framer.buffered() <= wire::MAX_BUFFER);
    }

    fn advance(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        if let Some(at) = self.layer.poll_timeout() {
            assert!(
                at >= self.now - Duration::from_millis(ms),
                "deadline in the past"
            );
        }
        self.layer.handle_timeout(self.now);
        self.drain();
    }

    fn drain(&mut self) {
        let mut n = 0;
        while let Some(out) = self.layer.poll_output() {
            n += 1;
            assert!(n < 10_000, "output flood");
            if let Output::Request { key, request, .. } = out {
                self.answered += 1;
                let code =
                    [100, 180, 200, 404, 487][usize::try_from(self.answered % 5).unwrap_or(0)];
                let r = wire::response(&request, code, "", Some("fuzz"));
                self.layer.respond(self.now, &key, r);
            }
        }
        assert!(
            self.layer.transaction_count() <= MAX_TX,
            "unbounded transactions"
        );
    }

    /// After a long silence every transaction must be gone (nothing stuck).
    fn settle(&mut self) {
        for _ in 0..8 {
            self.advance(60_000);
        }
        assert_eq!(self.layer.transaction_count(), 0, "stuck transaction");
        assert!(self.layer.poll_timeout().is_none());
    }
}

fn cases() -> u32 {
    std::env::var("SIP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_messages_never_panic_and_state_stays_bounded(
        steps in proptest::collection::vec(
            (any::<usize>(), proptest::collection::vec(op_strategy(), 0..4), any::<usize>(), 0u64..40_000),
            1..8,
        )
    ) {
        let corpus = corpus();
        let mut h = Harness::new();
        for (pick, ops, split, wait) in steps {
            let mut msg = corpus.get(pick % corpus.len()).cloned().unwrap_or_default();
            for op in &ops {
                msg = apply(&corpus, msg, op);
            }
            h.feed(&msg, split);
            h.advance(wait);
        }
        h.settle();
    }
}

#[test]
#[ignore = "long run: SIP_FUZZ_CASES=5000000 cargo test --release ... -- --ignored --nocapture"]
fn long_run() {
    let total = u64::from(cases());
    let corpus = corpus();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut h = Harness::new();
    let started = Instant::now();
    let mut parsed_ok = 0u64;
    for i in 0..total {
        let mut msg = corpus
            .get(rng.below(corpus.len() as u64))
            .cloned()
            .unwrap_or_default();
        for _ in 0..rng.below(4) {
            msg = apply(&corpus, msg, &rng.op());
        }
        if matches!(wire::parse_datagram(&msg), Ok(Some(_))) {
            parsed_ok += 1;
        }
        let split = rng.below(u64::MAX);
        h.feed(&msg, split);
        let wait = if rng.below(50) == 0 {
            rng.below(40_000)
        } else {
            rng.below(50)
        };
        h.advance(wait as u64);
        if i % 100_000 == 99_999 {
            h.settle();
        }
    }
    h.settle();
    let elapsed = started.elapsed();
    println!(
        "sip fuzz: {total} cases ({parsed_ok} still valid after mutation), {} TU requests, {:.1}s, {:.0} cases/s, 0 panics",
        h.answered,
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64().max(1e-9)
    );
}
