//! The SIP gateway's settings: where it listens, the names it answers for, and who may
//! register.

use std::net::SocketAddr;
use std::time::Duration;

use crate::imc::Addressing;

/// Everything the gateway needs besides the engine and the media node.
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// UDP listen address (`None`: no UDP).
    pub udp: Option<SocketAddr>,
    /// TCP listen address (`None`: no TCP).
    pub tcp: Option<SocketAddr>,
    /// The SIP domain, the conference manager and the room URI form, as in Kamailio's
    /// imc example (rooms `sip:<room_prefix><room>@<domain>`, manager
    /// `sip:<manager_user>@<domain>`), and the IMC command character.
    pub addressing: Addressing,
    /// Digest realm (the domain by default).
    pub realm: String,
    /// Digest algorithms offered, in order (RFC 8760 §2.4: most preferred first), and
    /// the only ones accepted.
    pub digest_algorithms: Vec<crate::digest::Algorithm>,
    /// Whether identities without SIP credentials may register and act (as guests of
    /// the domain). Identities with credentials always authenticate.
    pub open_registration: bool,
    /// Registrar: shortest accepted binding (`423 Interval Too Brief` below it).
    pub min_expires: u32,
    /// Registrar: longest binding granted (longer requests are shortened).
    pub max_expires: u32,
    /// Registrar: binding length when the request names none.
    pub default_expires: u32,
    /// Registrar: contacts kept per address of record.
    pub max_contacts_per_aor: usize,
    /// Registrar: bindings kept in all (memory bound against a registration flood).
    pub max_bindings: usize,
    /// Live SIP transactions at most, and per source address (stateless `503` beyond).
    pub max_transactions: usize,
    pub max_transactions_per_address: usize,
    /// Open TCP connections at most.
    pub max_tcp_connections: usize,
    /// A TCP connection that sends nothing for this long is closed.
    pub tcp_idle_timeout: Duration,
    /// RFC 4028: the smallest session interval accepted (`Min-SE`).
    pub session_min_se: u32,
    /// RFC 4028: the session interval proposed when the caller names none.
    pub session_expires: u32,
    /// Calls a single address may have at once.
    pub max_calls_per_address: usize,
    /// The key of the stateless digest nonces (random per start unless configured).
    pub nonce_key: [u8; 32],
}

impl SipConfig {
    /// The defaults the README promises: UDP and TCP on 127.0.0.1:5060, domain
    /// `localhost`, Kamailio's example names, registration with credentials only.
    pub fn new(nonce_key: [u8; 32]) -> SipConfig {
        let listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 5060));
        SipConfig {
            udp: Some(listen),
            tcp: Some(listen),
            // Kamailio's example names and `#` as the command character.
            addressing: Addressing::new("localhost"),
            realm: "localhost".into(),
            digest_algorithms: vec![
                crate::digest::Algorithm::Sha256,
                crate::digest::Algorithm::Md5,
            ],
            open_registration: false,
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts_per_aor: 10,
            max_bindings: 100_000,
            max_transactions: crate::transaction::TimerConfig::default().max_transactions,
            max_transactions_per_address: crate::transaction::TimerConfig::default()
                .max_transactions_per_address,
            max_tcp_connections: 4096,
            tcp_idle_timeout: Duration::from_secs(600),
            session_min_se: 90,
            session_expires: 1800,
            max_calls_per_address: 16,
            nonce_key,
        }
    }
}
