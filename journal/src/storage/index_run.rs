//! Stream index runs: the sequence numbers of consecutive versions of one stream in one
//! stored value.
//!
//! The index maps (stream, version) to a sequence number. Storing one key per record
//! made the index cost as many storage inserts as the records themselves, which halved
//! durable throughput; a run stores every version of a stream that one index batch
//! covers under one key, so a busy stream costs one insert per batch.
//!
//! Value layout: one format byte, then the first sequence number and each following
//! difference as unsigned LEB128 varints. Versions are implicit: the key holds the first
//! one and each further number is the next version. Sequence numbers rise strictly with
//! the version, so every difference is at least 1.

/// The run format this build writes and reads.
const RUN_FORMAT: u8 = 1;

/// Most versions in one run, so a run value stays a few KiB at most (10 bytes a number
/// in the worst case) and never nears the storage engine's large-value threshold.
pub(crate) const MAX_RUN: usize = 256;

/// Encodes the ascending sequence numbers of consecutive versions.
pub(crate) fn encode(seqs: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + seqs.len() * 3);
    out.push(RUN_FORMAT);
    let mut prev = 0u64;
    for &seq in seqs {
        put_varint(&mut out, seq - prev);
        prev = seq;
    }
    out
}

/// Decodes a run value into its sequence numbers; a description of the damage if the
/// bytes are not a well-formed run.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<u64>, String> {
    let (&format, mut rest) = bytes.split_first().ok_or("empty run")?;
    if format != RUN_FORMAT {
        return Err(format!("unknown run format {format}"));
    }
    let mut seqs = Vec::with_capacity(rest.len());
    let mut prev = 0u64;
    while !rest.is_empty() {
        let (delta, tail) = take_varint(rest)?;
        rest = tail;
        if delta == 0 {
            return Err("sequence numbers do not rise".into());
        }
        prev = prev.checked_add(delta).ok_or("sequence number overflows")?;
        seqs.push(prev);
    }
    if seqs.is_empty() {
        return Err("run without entries".into());
    }
    Ok(seqs)
}

/// Splits one stream's (version, seq) entries, sorted by version, into runs of
/// consecutive versions: (first version, seqs).
pub(crate) fn split(entries: &[(u64, u64)]) -> Vec<(u64, Vec<u64>)> {
    let mut runs: Vec<(u64, Vec<u64>)> = Vec::new();
    for &(version, seq) in entries {
        match runs.last_mut() {
            Some((first, seqs))
                if seqs.len() < MAX_RUN && *first + seqs.len() as u64 == version =>
            {
                seqs.push(seq)
            }
            _ => runs.push((version, vec![seq])),
        }
    }
    runs
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(bytes: &[u8]) -> Result<(u64, &[u8]), String> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        let low = u64::from(b & 0x7f);
        if i == 9 && low > 1 {
            return Err("varint overflows 64 bits".into());
        }
        v |= low << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, &bytes[i + 1..]));
        }
    }
    Err("truncated varint".into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn runs_round_trip_including_extremes() {
        for seqs in [vec![1], vec![1, 2, 3], vec![5, 300, 70_000, u64::MAX]] {
            assert_eq!(decode(&encode(&seqs)).unwrap(), seqs);
        }
    }

    #[test]
    fn damaged_runs_are_described_not_trusted() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[RUN_FORMAT]).is_err());
        assert!(decode(&[9, 1]).unwrap_err().contains("format 9"));
        assert!(decode(&[RUN_FORMAT, 0x80])
            .unwrap_err()
            .contains("truncated"));
        assert!(decode(&[RUN_FORMAT, 5, 0]).unwrap_err().contains("rise"));
        let mut too_wide = vec![RUN_FORMAT];
        too_wide.extend([0xff; 9]);
        too_wide.push(0x02);
        assert!(decode(&too_wide).unwrap_err().contains("64 bits"));
        let mut overflow = encode(&[u64::MAX]);
        overflow.push(1);
        assert!(decode(&overflow).unwrap_err().contains("overflows"));
    }

    #[test]
    fn split_cuts_at_gaps_and_at_the_run_limit() {
        let entries: Vec<(u64, u64)> = (1..=MAX_RUN as u64 + 2)
            .map(|v| (v, v * 10))
            .chain([(MAX_RUN as u64 + 10, 99_999)])
            .collect();
        let runs = split(&entries);
        assert_eq!(runs.len(), 3);
        assert_eq!((runs[0].0, runs[0].1.len()), (1, MAX_RUN));
        assert_eq!(runs[1].0, MAX_RUN as u64 + 1);
        assert_eq!(
            runs[1].1,
            vec![(MAX_RUN as u64 + 1) * 10, (MAX_RUN as u64 + 2) * 10]
        );
        assert_eq!(runs[2], (MAX_RUN as u64 + 10, vec![99_999]));
    }

    proptest! {
        #[test]
        fn any_rising_sequence_round_trips(deltas in prop::collection::vec(1u64..1 << 40, 1..300)) {
            let seqs: Vec<u64> = deltas.iter().scan(0u64, |s, d| { *s += d; Some(*s) }).collect();
            prop_assert_eq!(decode(&encode(&seqs)).unwrap(), seqs);
        }

        #[test]
        fn hostile_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }
}
