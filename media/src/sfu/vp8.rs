//! Just enough of the VP8 RTP payload descriptor (RFC 7741 §4.2) for layer switching:
//! whether a packet starts a keyframe, and the picture id / TL0PICIDX to keep
//! monotonic when the forwarded layer changes (as Jitsi Videobridge rewrites them).
//! Nothing here decodes video.

/// Where the descriptor's rewritable fields are in a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Descriptor {
    /// Byte offset of the picture id, and whether it is 15 bits (M bit) or 7.
    pub(crate) picture_id: Option<(usize, bool)>,
    /// Byte offset of TL0PICIDX.
    pub(crate) tl0: Option<usize>,
    /// First packet of a partition 0 (`S=1`, `PID=0`).
    pub(crate) starts_frame: bool,
    /// Offset of the VP8 payload header (after the descriptor).
    pub(crate) header: usize,
}

/// Parses the payload descriptor; `None` if the payload is too short for it.
pub(crate) fn descriptor(payload: &[u8]) -> Option<Descriptor> {
    let first = *payload.first()?;
    let starts_frame = first & 0x10 != 0 && first & 0x07 == 0;
    let mut at = 1;
    let (mut picture_id, mut tl0) = (None, None);
    if first & 0x80 != 0 {
        let x = *payload.get(at)?;
        at += 1;
        if x & 0x80 != 0 {
            let b = *payload.get(at)?;
            let long = b & 0x80 != 0;
            picture_id = Some((at, long));
            at += if long { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            payload.get(at)?;
            tl0 = Some(at);
            at += 1;
        }
        if x & 0x30 != 0 {
            at += 1;
        }
    }
    (payload.len() > at).then_some(Descriptor {
        picture_id,
        tl0,
        starts_frame,
        header: at,
    })
}

/// Whether the packet is the first of a VP8 keyframe (the payload header's P bit is 0).
pub(crate) fn is_keyframe_start(payload: &[u8]) -> bool {
    descriptor(payload).is_some_and(|d| d.starts_frame && payload[d.header] & 0x01 == 0)
}

/// The picture id, if the descriptor carries one.
pub(crate) fn picture_id(payload: &[u8], d: &Descriptor) -> Option<u16> {
    let (at, long) = d.picture_id?;
    Some(if long {
        u16::from_be_bytes([payload[at] & 0x7f, payload[at + 1]])
    } else {
        u16::from(payload[at] & 0x7f)
    })
}

/// The TL0PICIDX, if the descriptor carries one.
pub(crate) fn tl0(payload: &[u8], d: &Descriptor) -> Option<u8> {
    d.tl0.map(|at| payload[at])
}

/// Writes `id` as the picture id, in the width the packet already uses.
pub(crate) fn set_picture_id(payload: &mut [u8], d: &Descriptor, id: u16) {
    if let Some((at, long)) = d.picture_id {
        if long {
            let [hi, lo] = (id & 0x7fff).to_be_bytes();
            payload[at] = 0x80 | hi;
            payload[at + 1] = lo;
        } else {
            payload[at] = (id & 0x7f) as u8;
        }
    }
}

pub(crate) fn set_tl0(payload: &mut [u8], d: &Descriptor, value: u8) {
    if let Some(at) = d.tl0 {
        payload[at] = value;
    }
}

/// The modulus of a picture id field (15 or 7 bits).
pub(crate) fn picture_id_modulus(d: &Descriptor) -> u16 {
    match d.picture_id {
        Some((_, true)) => 0x8000,
        _ => 0x80,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn finds_keyframes_and_picture_ids() {
        // X=1 S=1 PID=0; I=1 L=1; 15-bit picture id 0x1234; TL0PICIDX 7; keyframe.
        let p = [0x90, 0xc0, 0x80 | 0x12, 0x34, 7, 0x00, 1, 2];
        let d = descriptor(&p).unwrap();
        assert!(is_keyframe_start(&p));
        assert_eq!(picture_id(&p, &d), Some(0x1234));
        assert_eq!(tl0(&p, &d), Some(7));
        let mut q = p;
        set_picture_id(&mut q, &d, 0x7fff);
        set_tl0(&mut q, &d, 9);
        assert_eq!(picture_id(&q, &d), Some(0x7fff));
        assert_eq!(tl0(&q, &d), Some(9));
        // A delta frame (P=1), and a continuation packet (S=0).
        assert!(!is_keyframe_start(&[0x10, 0x01, 1]));
        assert!(!is_keyframe_start(&[0x00, 0x00, 1]));
        // The descriptor without a payload header is not a keyframe; nothing panics.
        assert!(!is_keyframe_start(&[0x90, 0x80]));
        assert!(!is_keyframe_start(&[]));
    }
}
