//! The gateway's counters, for /metrics and /about/health.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::deliver::MAX_IN_FLIGHT;
use super::ClientOutcome;

/// Counters; all monotonic but the gauges the server reads at render time.
#[derive(Debug)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub messages: AtomicU64,
    pub invites: AtomicU64,
    pub registers: AtomicU64,
    pub auth_refusals: AtomicU64,
    pub delivered: AtomicU64,
    pub delivery_failed: AtomicU64,
    pub delivery_timeouts: AtomicU64,
    pub delivery_dropped: AtomicU64,
    pub malformed: AtomicU64,
    pub calls_ended_by_server: AtomicU64,
    /// Deliveries in flight (permits).
    pub in_flight: Arc<Semaphore>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            invites: AtomicU64::new(0),
            registers: AtomicU64::new(0),
            auth_refusals: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            delivery_failed: AtomicU64::new(0),
            delivery_timeouts: AtomicU64::new(0),
            delivery_dropped: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            calls_ended_by_server: AtomicU64::new(0),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    pub fn count_request(&self, method: &rsip::Method) {
        inc(&self.requests);
        match method {
            rsip::Method::Message => inc(&self.messages),
            rsip::Method::Invite => inc(&self.invites),
            rsip::Method::Register => inc(&self.registers),
            _ => {}
        }
    }

    pub fn count_auth_refusal(&self) {
        inc(&self.auth_refusals);
    }

    pub fn count_malformed(&self) {
        inc(&self.malformed);
    }

    pub fn count_delivery(&self, outcome: &ClientOutcome) {
        match outcome {
            o if o.delivered() => inc(&self.delivered),
            ClientOutcome::TimedOut => inc(&self.delivery_timeouts),
            _ => inc(&self.delivery_failed),
        }
    }

    pub fn count_delivery_dropped(&self) {
        inc(&self.delivery_dropped);
    }

    /// Prometheus text; `gauges` are (name, help, value) read by the caller.
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &AtomicU64); 11] = [
            (
                "conclave_sip_requests_total",
                "SIP requests received (new transactions)",
                &self.requests,
            ),
            (
                "conclave_sip_messages_total",
                "SIP MESSAGE requests received",
                &self.messages,
            ),
            (
                "conclave_sip_invites_total",
                "SIP INVITE requests received (initial and re-INVITEs)",
                &self.invites,
            ),
            (
                "conclave_sip_registers_total",
                "SIP REGISTER requests received",
                &self.registers,
            ),
            (
                "conclave_sip_auth_refusals_total",
                "SIP requests answered with a digest challenge or refused by authentication",
                &self.auth_refusals,
            ),
            (
                "conclave_sip_deliveries_total",
                "MESSAGEs delivered to SIP members (2xx)",
                &self.delivered,
            ),
            (
                "conclave_sip_delivery_failures_total",
                "MESSAGEs to SIP members answered with a failure or not sendable",
                &self.delivery_failed,
            ),
            (
                "conclave_sip_delivery_timeouts_total",
                "MESSAGEs to SIP members that got no final answer",
                &self.delivery_timeouts,
            ),
            (
                "conclave_sip_deliveries_dropped_total",
                "MESSAGEs to SIP members dropped because too many were in flight",
                &self.delivery_dropped,
            ),
            (
                "conclave_sip_malformed_total",
                "SIP messages refused as malformed",
                &self.malformed,
            ),
            (
                "conclave_sip_calls_ended_by_server_total",
                "calls the server ended (kick, ban, timeout, no ACK)",
                &self.calls_ended_by_server,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.load(Ordering::Relaxed)
            );
        }
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}
