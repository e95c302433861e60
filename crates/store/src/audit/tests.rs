//! Key layouts and the tail encoding of the audit trail.

use super::*;

#[test]
fn keys_sort_by_position_and_keep_their_prefixes() {
    let cases = [(1u64, 2u64), (255, 256), (u64::MAX - 1, u64::MAX)];
    for (a, b) in cases {
        assert!(record_key(a) < record_key(b), "{a} < {b}");
        assert!(journal_event_key(a) < journal_event_key(b), "{a} < {b}");
        assert_eq!(record_key(a)[0], b'r');
        assert_eq!(journal_event_key(a)[0], b'e');
        assert_eq!(high_water_key(a)[0], b'j');
    }
    // The journal's id and next-position keys sort apart from its event keys, the tail after
    // every record key.
    assert!(JOURNAL_ID_KEY < &journal_event_key(0)[..]);
    assert!(&record_key(u64::MAX)[..] < TAIL_KEY);
    assert!(&journal_event_key(u64::MAX)[..] < JOURNAL_NEXT_KEY);
}

#[test]
fn tails_round_trip_and_refuse_bad_lengths() {
    let tail = AuditTail {
        seq: 41,
        hash: [9; 32],
    };
    assert_eq!(decode_tail(&encode_tail(&tail)).unwrap(), tail);
    assert!(decode_tail(&[0; 39]).is_err());
    assert!(decode_tail(&[0; 41]).is_err());
}
