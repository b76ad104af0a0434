//! Verification: the chain walk, ed25519-signed checkpoints of the chain head, and export
//! bundles that anyone can check without the server.
//!
//! A checkpoint signs `(seq, hash)` of a record whose chain was verified up to it: since
//! every hash covers its predecessor, the signature vouches for the whole prefix. The
//! key is generated on first use and kept in the data directory (`replay-signing.key`,
//! mode 0600); publish its public half (`conclave journal checkpoint` prints it) so that
//! third parties can pin it.
//!
//! A bundle is JSON lines: a header, one line per record with every field the chain hash
//! covers (payload as hex), and the signed checkpoint last. `verify_bundle` recomputes
//! each hash with the journal's own [`conclave_journal::chain_hash`], checks the links,
//! the sequence and stream-version continuity, that the readable event view matches the
//! payload, and the signature; the first bad record is named. Personal content is not
//! exported (only its digest, which the chain covers), so a bundle can be handed out.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use conclave_engine::codec;
use conclave_engine::json::event_json;
use conclave_journal::{chain_hash, hex, Hash, Journal, Metadata, Record, ZERO_HASH};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ReplayError, Result};
use crate::fmt_time;

/// The signing key's file in the data directory.
pub const KEY_FILE: &str = "replay-signing.key";
/// Format tag of checkpoints.
pub const CHECKPOINT_FORMAT: &str = "conclave-checkpoint/1";
/// Longest bundle line accepted (a record holds at most 4 MiB of payload, hex doubles it).
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// The outcome of a chain walk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainCheck {
    pub ok: bool,
    pub records_checked: u64,
    pub head: u64,
    /// Hash of the last good record.
    pub last_good_hash: String,
    pub purged_content: u64,
    pub first_failure: Option<Failure>,
}

/// The first bad record and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub seq: u64,
    pub problem: String,
}

/// Walks the journal's hash chain (the journal's own verification).
pub fn verify_chain(journal: &Journal) -> Result<ChainCheck> {
    let report = journal.verify()?;
    Ok(ChainCheck {
        ok: report.is_ok(),
        records_checked: report.records_checked,
        head: journal.head(),
        last_good_hash: hex(&report.last_good_hash),
        purged_content: report.purged_content,
        first_failure: report.first_failure.map(|f| Failure {
            seq: f.seq,
            problem: f.to_string(),
        }),
    })
}

/// A signed statement: "the chain up to record `seq` ends in `hash`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCheckpoint {
    pub format: String,
    pub seq: u64,
    /// Hex of the record hash at `seq`.
    pub hash: String,
    pub signed_at: String,
    /// Hex of the ed25519 public key.
    pub public_key: String,
    /// Hex of the ed25519 signature over the canonical message.
    pub signature: String,
}

/// What is signed: a domain tag, then seq, hash and signing time, fixed-width.
fn message(seq: u64, hash: &Hash, signed_at: DateTime<Utc>) -> Vec<u8> {
    let mut m = b"conclave.replay.checkpoint.v1\0".to_vec();
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&signed_at.timestamp_micros().to_le_bytes());
    m
}

/// Parses lower- or upper-case hex of exactly `N` bytes.
pub fn unhex<const N: usize>(s: &str) -> std::result::Result<[u8; N], String> {
    let v = unhex_vec(s)?;
    v.try_into()
        .map_err(|v: Vec<u8>| format!("expected {N} bytes of hex, found {}", v.len()))
}

/// Parses hex of any even length.
pub fn unhex_vec(s: &str) -> std::result::Result<Vec<u8>, String> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err("odd-length hex".into());
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(format!("not a hex digit: {:?}", char::from(c))),
    };
    b.chunks(2)
        .map(|p| Ok((nib(p[0])? << 4) | nib(p[1])?))
        .collect()
}

/// The signing key in `data_dir`, created (mode 0600) if missing.
pub fn load_or_create_key(data_dir: &Path) -> Result<SigningKey> {
    let path = data_dir.join(KEY_FILE);
    let key_err = |reason: String| ReplayError::Key {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let seed: [u8; 32] = unhex(text.trim()).map_err(key_err)?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| key_err(format!("no OS randomness: {e}")))?;
            conclave_journal::durable::create_private_file(
                &path,
                format!("{}\n", hex(&seed)).as_bytes(),
            )
            .map_err(|e| key_err(e.to_string()))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(key_err(e.to_string())),
    }
}

/// Signs `(seq, hash)`.
pub fn sign(key: &SigningKey, seq: u64, hash: &Hash, now: DateTime<Utc>) -> SignedCheckpoint {
    let sig = key.sign(&message(seq, hash, now));
    SignedCheckpoint {
        format: CHECKPOINT_FORMAT.into(),
        seq,
        hash: hex(hash),
        signed_at: fmt_time(now),
        public_key: hex(key.verifying_key().as_bytes()),
        signature: hex(&sig.to_bytes()),
    }
}

/// Verifies the chain and signs its last good record. With a broken chain the
/// checkpoint covers only the good prefix; the check says where it broke.
pub fn checkpoint(
    journal: &Journal,
    key: &SigningKey,
    now: DateTime<Utc>,
) -> Result<(SignedCheckpoint, ChainCheck)> {
    let check = verify_chain(journal)?;
    let hash: Hash = unhex(&check.last_good_hash).map_err(ReplayError::InvalidArgument)?;
    Ok((sign(key, check.records_checked, &hash, now), check))
}

/// Checks a checkpoint's signature on its own (not against any journal).
pub fn check_signature(cp: &SignedCheckpoint) -> std::result::Result<(), String> {
    if cp.format != CHECKPOINT_FORMAT {
        return Err(format!("unknown checkpoint format {:?}", cp.format));
    }
    let hash: Hash = unhex(&cp.hash)?;
    let pk: [u8; 32] = unhex(&cp.public_key)?;
    let sig: [u8; 64] = unhex(&cp.signature)?;
    let signed_at = DateTime::parse_from_rfc3339(&cp.signed_at)
        .map_err(|e| format!("signed_at: {e}"))?
        .with_timezone(&Utc);
    let key = VerifyingKey::from_bytes(&pk).map_err(|e| format!("public key: {e}"))?;
    key.verify_strict(
        &message(cp.seq, &hash, signed_at),
        &Signature::from_bytes(&sig),
    )
    .map_err(|_| "the signature does not match".to_owned())
}

/// A checkpoint checked against a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointCheck {
    pub ok: bool,
    pub signature_ok: bool,
    /// Whether the journal's record `seq` has the checkpoint's hash.
    pub hash_matches: bool,
    pub chain: ChainCheck,
    pub problem: Option<String>,
}

/// Re-verifies the journal and checks that it still ends (at `cp.seq`) where the
/// checkpoint says, with a valid signature.
pub fn check_checkpoint(journal: &Journal, cp: &SignedCheckpoint) -> Result<CheckpointCheck> {
    let sig = check_signature(cp);
    let chain = verify_chain(journal)?;
    let covered = chain.first_failure.as_ref().is_none_or(|f| f.seq > cp.seq);
    let stored = journal.get(cp.seq)?.map(|r| hex(&r.hash));
    let hash_matches =
        cp.seq == 0 && cp.hash == hex(&ZERO_HASH) || stored.as_deref() == Some(&cp.hash);
    let problem = match (&sig, covered, hash_matches) {
        (Err(e), _, _) => Some(e.clone()),
        (_, false, _) => chain.first_failure.as_ref().map(|f| f.to_string_lossy()),
        (_, _, false) => Some(format!("record {} does not have the signed hash", cp.seq)),
        _ => None,
    };
    Ok(CheckpointCheck {
        ok: problem.is_none(),
        signature_ok: sig.is_ok(),
        hash_matches,
        chain,
        problem,
    })
}

impl Failure {
    fn to_string_lossy(&self) -> String {
        self.problem.clone()
    }
}

/// The first line of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleHeader {
    /// Bundle format version (1).
    pub conclave_bundle: u32,
    pub from_seq: u64,
    pub to_seq: u64,
    /// Hash of record `from_seq - 1` (zeros when the bundle starts at 1).
    pub prev_hash: String,
    pub exported_at: String,
}

/// Record metadata as exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleMeta {
    pub actor: Option<String>,
    pub gateway: Option<String>,
    pub protocol: Option<String>,
    pub remote_addr: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    /// Who authorized the command when it is not the actor (an operator acting as a
    /// person).
    #[serde(default)]
    pub authorized_by: Option<String>,
}

/// One record as exported: every field the chain hash covers, plus a readable view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleRecord {
    pub seq: u64,
    pub stream: String,
    pub stream_version: u64,
    pub timestamp_micros: i64,
    pub event_type: String,
    pub schema_version: u16,
    /// Hex of the stored payload.
    pub payload: String,
    /// Hex digest of the personal content (the content itself is not exported).
    pub content_digest: Option<String>,
    pub meta: BundleMeta,
    pub prev_hash: String,
    pub hash: String,
    /// The engine's JSON view of the event, personal content left out; checked against
    /// the payload by the verifier.
    pub event: Value,
}

/// The last line of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleTrailer {
    pub checkpoint: SignedCheckpoint,
}

/// The readable view of a payload, personal content left out.
fn event_view(
    event_type: &str,
    version: u16,
    payload: &[u8],
) -> std::result::Result<Value, String> {
    codec::decode(event_type, version, payload, None)
        .map(|e| event_json(&e))
        .map_err(|e| e.to_string())
}

impl BundleRecord {
    fn of(r: &Record) -> Self {
        let event = event_view(&r.event_type, r.schema_version, &r.payload)
            .unwrap_or_else(|why| serde_json::json!({ "undecodable": why }));
        BundleRecord {
            seq: r.seq,
            stream: r.stream.clone(),
            stream_version: r.stream_version,
            timestamp_micros: r.timestamp.timestamp_micros(),
            event_type: r.event_type.clone(),
            schema_version: r.schema_version,
            payload: hex(&r.payload),
            content_digest: r.content_digest.as_ref().map(|d| hex(d)),
            meta: BundleMeta {
                actor: r.meta.actor.clone(),
                gateway: r.meta.gateway.clone(),
                protocol: r.meta.protocol.clone(),
                remote_addr: r.meta.remote_addr.clone(),
                correlation_id: r.meta.correlation_id.clone(),
                causation_id: r.meta.causation_id.clone(),
                authorized_by: r.meta.authorized_by.clone(),
            },
            prev_hash: hex(&r.prev_hash),
            hash: hex(&r.hash),
            event,
        }
    }

    /// The journal record this line describes; fails on malformed fields.
    fn to_record(&self) -> std::result::Result<Record, String> {
        let timestamp = DateTime::from_timestamp_micros(self.timestamp_micros)
            .ok_or_else(|| format!("timestamp {} out of range", self.timestamp_micros))?;
        Ok(Record {
            seq: self.seq,
            stream: self.stream.clone(),
            stream_version: self.stream_version,
            timestamp,
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            payload: unhex_vec(&self.payload).map_err(|e| format!("payload: {e}"))?,
            content_digest: self
                .content_digest
                .as_deref()
                .map(unhex::<32>)
                .transpose()
                .map_err(|e| format!("content_digest: {e}"))?,
            meta: Metadata {
                actor: self.meta.actor.clone(),
                gateway: self.meta.gateway.clone(),
                protocol: self.meta.protocol.clone(),
                remote_addr: self.meta.remote_addr.clone(),
                correlation_id: self.meta.correlation_id.clone(),
                causation_id: self.meta.causation_id.clone(),
                authorized_by: self.meta.authorized_by.clone(),
            },
            prev_hash: unhex(&self.prev_hash).map_err(|e| format!("prev_hash: {e}"))?,
            hash: unhex(&self.hash).map_err(|e| format!("hash: {e}"))?,
        })
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSummary {
    pub from_seq: u64,
    pub to_seq: u64,
    pub records: u64,
    pub checkpoint: SignedCheckpoint,
    pub chain: ChainCheck,
}

/// Writes a bundle of records `from_seq..=head`. The chain is verified first; a broken
/// chain is refused unless `force`, in which case the checkpoint signs only the good
/// prefix and the records are exported as stored (the verifier names the bad one).
///
/// Streams: one record is held at a time, so memory stays constant whatever the
/// journal's size (pass a buffered writer).
pub fn export_bundle(
    journal: &Journal,
    key: &SigningKey,
    from_seq: u64,
    force: bool,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> Result<ExportSummary> {
    plan_bundle(journal, key, from_seq, force, now)?.write(journal, out)
}

/// A bundle whose chain is verified and checkpoint signed, ready to be written: what a
/// streaming writer needs to know (the range, the record count, whether the chain is
/// good) before the first byte goes out.
#[derive(Debug, Clone)]
pub struct BundlePlan {
    header: BundleHeader,
    checkpoint: SignedCheckpoint,
    chain: ChainCheck,
}

/// Verifies the chain and signs the checkpoint a bundle of `from_seq..=head` will carry
/// (see [`export_bundle`]).
pub fn plan_bundle(
    journal: &Journal,
    key: &SigningKey,
    from_seq: u64,
    force: bool,
    now: DateTime<Utc>,
) -> Result<BundlePlan> {
    let (cp, chain) = checkpoint(journal, key, now)?;
    if let (Some(f), false) = (&chain.first_failure, force) {
        return Err(ReplayError::InvalidArgument(format!(
            "the chain is broken ({}); refusing to export (use force to export as stored)",
            f.problem
        )));
    }
    let from_seq = from_seq.max(1);
    // On a live journal records may land after the walk: a good chain is exported up to
    // what the checkpoint signs, so the bundle ends where its signature does.
    let head = if chain.ok { cp.seq } else { journal.head() };
    let prev_hash = if from_seq == 1 {
        ZERO_HASH
    } else {
        journal
            .get(from_seq - 1)?
            .map(|r| r.hash)
            .ok_or_else(|| ReplayError::InvalidArgument(format!("no record {}", from_seq - 1)))?
    };
    Ok(BundlePlan {
        header: BundleHeader {
            conclave_bundle: 1,
            from_seq,
            to_seq: head,
            prev_hash: hex(&prev_hash),
            exported_at: fmt_time(now),
        },
        checkpoint: cp,
        chain,
    })
}

impl BundlePlan {
    /// The first record exported.
    pub fn from_seq(&self) -> u64 {
        self.header.from_seq
    }

    /// The last record exported.
    pub fn to_seq(&self) -> u64 {
        self.header.to_seq
    }

    /// How many records the bundle carries.
    pub fn records(&self) -> u64 {
        (self.header.to_seq + 1).saturating_sub(self.header.from_seq)
    }

    /// The chain check made before signing.
    pub fn chain(&self) -> &ChainCheck {
        &self.chain
    }

    /// Writes the bundle: header, one line per record, trailer.
    pub fn write(self, journal: &Journal, out: &mut dyn Write) -> Result<ExportSummary> {
        let io = |e: std::io::Error| ReplayError::io(Path::new("bundle"), e);
        let json = |v: &dyn erased::Ser| v.line().map_err(ReplayError::Render);
        out.write_all(json(&self.header)?.as_bytes()).map_err(io)?;
        let mut records = 0;
        for record in journal.iter_range(self.header.from_seq, self.header.to_seq) {
            let record = record?;
            out.write_all(json(&BundleRecord::of(&record))?.as_bytes())
                .map_err(io)?;
            records += 1;
        }
        let trailer = BundleTrailer {
            checkpoint: self.checkpoint.clone(),
        };
        out.write_all(json(&trailer)?.as_bytes()).map_err(io)?;
        out.flush().map_err(io)?;
        Ok(ExportSummary {
            from_seq: self.header.from_seq,
            to_seq: self.header.to_seq,
            records,
            checkpoint: self.checkpoint,
            chain: self.chain,
        })
    }
}

mod erased {
    /// JSON line of any serializable value.
    pub trait Ser {
        fn line(&self) -> Result<String, String>;
    }
    impl<T: serde::Serialize> Ser for T {
        fn line(&self) -> Result<String, String> {
            serde_json::to_string(self)
                .map(|mut s| {
                    s.push('\n');
                    s
                })
                .map_err(|e| e.to_string())
        }
    }
}

/// The bundle's first problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFailure {
    /// The record at fault (for a malformed line: the one expected there).
    pub seq: Option<u64>,
    /// 1-based line number in the file.
    pub line: u64,
    pub problem: String,
}

/// The outcome of checking a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleReport {
    pub ok: bool,
    pub from_seq: Option<u64>,
    pub to_seq: Option<u64>,
    /// Records whose hash and link were checked and found good.
    pub records_checked: u64,
    pub first_failure: Option<BundleFailure>,
    pub checkpoint: Option<SignedCheckpoint>,
    pub signature_ok: bool,
    /// Whether the checkpoint signs the hash of the bundle's last good record.
    pub checkpoint_covers: bool,
    /// When a key was pinned: whether the checkpoint was signed by it.
    pub key_trusted: Option<bool>,
}

/// Reads one line of at most `MAX_LINE` bytes; `None` at the end.
fn read_line(r: &mut dyn BufRead, buf: &mut Vec<u8>) -> std::result::Result<Option<()>, String> {
    buf.clear();
    let n = r
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)
        .map_err(|e| format!("read error: {e}"))?;
    if n == 0 {
        return Ok(None);
    }
    if buf.len() > MAX_LINE {
        return Err(format!("line longer than {MAX_LINE} bytes"));
    }
    Ok(Some(()))
}

/// Checks a bundle from any reader (hostile input: every problem is a finding, never a
/// panic). `trusted_key` pins the signer's public key.
pub fn verify_bundle(r: &mut dyn BufRead, trusted_key: Option<&[u8; 32]>) -> BundleReport {
    let mut rep = BundleReport {
        ok: false,
        from_seq: None,
        to_seq: None,
        records_checked: 0,
        first_failure: None,
        checkpoint: None,
        signature_ok: false,
        checkpoint_covers: false,
        key_trusted: None,
    };
    let fail = |rep: &mut BundleReport, seq: Option<u64>, line: u64, problem: String| {
        if rep.first_failure.is_none() {
            rep.first_failure = Some(BundleFailure { seq, line, problem });
        }
    };
    let mut buf = Vec::new();
    let mut line_no = 1u64;
    // Header.
    let header: BundleHeader = match read_line(r, &mut buf) {
        Ok(Some(())) => match serde_json::from_slice(&buf) {
            Ok(h) => h,
            Err(e) => {
                fail(&mut rep, None, 1, format!("bad header: {e}"));
                return rep;
            }
        },
        Ok(None) => {
            fail(&mut rep, None, 1, "empty bundle".into());
            return rep;
        }
        Err(e) => {
            fail(&mut rep, None, 1, e);
            return rep;
        }
    };
    if header.conclave_bundle != 1 {
        fail(
            &mut rep,
            None,
            1,
            format!("unsupported bundle version {}", header.conclave_bundle),
        );
        return rep;
    }
    rep.from_seq = Some(header.from_seq);
    rep.to_seq = Some(header.to_seq);
    let mut prev: Hash = match unhex(&header.prev_hash) {
        Ok(h) => h,
        Err(e) => {
            fail(&mut rep, None, 1, format!("header prev_hash: {e}"));
            return rep;
        }
    };
    let mut expected = header.from_seq.max(1);
    // Stream versions can only be checked from the first record on.
    let mut versions: Option<HashMap<String, u64>> = (expected == 1).then(HashMap::new);
    let mut last_good = (expected - 1, prev);
    let mut trailer: Option<BundleTrailer> = None;
    loop {
        line_no += 1;
        match read_line(r, &mut buf) {
            Ok(None) => break,
            Err(e) => {
                fail(&mut rep, Some(expected), line_no, e);
                break;
            }
            Ok(Some(())) => {}
        }
        if trailer.is_some() {
            fail(&mut rep, None, line_no, "data after the checkpoint".into());
            break;
        }
        let value: Value = match serde_json::from_slice(&buf) {
            Ok(v) => v,
            Err(e) => {
                fail(&mut rep, Some(expected), line_no, format!("not JSON: {e}"));
                break;
            }
        };
        if value.get("checkpoint").is_some() {
            match serde_json::from_value::<BundleTrailer>(value) {
                Ok(t) => trailer = Some(t),
                Err(e) => fail(&mut rep, None, line_no, format!("bad checkpoint: {e}")),
            }
            continue;
        }
        if rep.first_failure.is_some() {
            // Keep reading only to find the trailer.
            continue;
        }
        let line: BundleRecord = match serde_json::from_value(value) {
            Ok(l) => l,
            Err(e) => {
                fail(
                    &mut rep,
                    Some(expected),
                    line_no,
                    format!("bad record: {e}"),
                );
                continue;
            }
        };
        let seq = line.seq;
        if seq != expected {
            fail(
                &mut rep,
                Some(expected),
                line_no,
                format!("record {expected} is missing (found {seq})"),
            );
            continue;
        }
        let record = match line.to_record() {
            Ok(r) => r,
            Err(e) => {
                fail(&mut rep, Some(seq), line_no, e);
                continue;
            }
        };
        if record.prev_hash != prev {
            fail(
                &mut rep,
                Some(seq),
                line_no,
                "its previous-hash does not match the record before it".into(),
            );
            continue;
        }
        if chain_hash(&record) != record.hash {
            fail(
                &mut rep,
                Some(seq),
                line_no,
                "its hash does not match its contents".into(),
            );
            continue;
        }
        if let Some(v) = versions.as_mut() {
            let next = v.entry(record.stream.clone()).or_insert(0);
            *next += 1;
            if record.stream_version != *next {
                fail(
                    &mut rep,
                    Some(seq),
                    line_no,
                    format!("stream version {}, expected {next}", record.stream_version),
                );
                continue;
            }
        }
        match event_view(&record.event_type, record.schema_version, &record.payload) {
            Ok(view) if view == line.event => {}
            Ok(_) => {
                fail(
                    &mut rep,
                    Some(seq),
                    line_no,
                    "the event view does not match the payload".into(),
                );
                continue;
            }
            Err(e) => {
                fail(
                    &mut rep,
                    Some(seq),
                    line_no,
                    format!("the payload does not decode: {e}"),
                );
                continue;
            }
        }
        prev = record.hash;
        last_good = (seq, record.hash);
        rep.records_checked += 1;
        expected += 1;
    }
    match trailer {
        None => fail(&mut rep, None, line_no, "no checkpoint at the end".into()),
        Some(t) => {
            rep.signature_ok = check_signature(&t.checkpoint).is_ok();
            rep.checkpoint_covers =
                t.checkpoint.seq == last_good.0 && t.checkpoint.hash == hex(&last_good.1);
            if let Some(k) = trusted_key {
                rep.key_trusted = Some(t.checkpoint.public_key == hex(k));
            }
            if !rep.signature_ok {
                fail(
                    &mut rep,
                    None,
                    line_no,
                    "the checkpoint signature is invalid".into(),
                );
            } else if rep.first_failure.is_none() && !rep.checkpoint_covers {
                fail(
                    &mut rep,
                    None,
                    line_no,
                    format!(
                        "the checkpoint signs record {}, the bundle ends at {}",
                        t.checkpoint.seq, last_good.0
                    ),
                );
            } else if rep.key_trusted == Some(false) {
                fail(
                    &mut rep,
                    None,
                    line_no,
                    "signed by another key than the pinned one".into(),
                );
            }
            rep.checkpoint = Some(t.checkpoint);
        }
    }
    if rep.first_failure.is_none() && header.to_seq != last_good.0 {
        fail(
            &mut rep,
            Some(last_good.0 + 1),
            line_no,
            format!(
                "the header says the bundle ends at {}, it ends at {}",
                header.to_seq, last_good.0
            ),
        );
    }
    rep.ok = rep.first_failure.is_none();
    rep
}

/// Reads a checkpoint file (JSON).
pub fn read_checkpoint(path: &Path) -> Result<SignedCheckpoint> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(1024 * 1024).read_to_string(&mut text))
        .map_err(|e| ReplayError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| ReplayError::Bundle {
        line: 1,
        reason: format!("not a checkpoint: {e}"),
    })
}

/// Where the signing key of a data directory lives.
pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}
