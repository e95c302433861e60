//! Signed status lists: one bit per license, published whole so a verifier's lookup reveals
//! nothing about which license it checked (W3C Bitstring Status List, "herd privacy").
//!
//! Each license gets a position in a list of at least [`STATUS_LIST_CAPACITY_MIN`] entries
//! (131,072, the W3C minimum of 16 KiB). Positions are drawn at random among the free ones by
//! [`allocate_position`], so neighbouring positions say nothing about issue order. The bit
//! order follows W3C: position 0 is the most significant bit of byte 0.
//!
//! # Compression
//!
//! The bits travel gzip-compressed (RFC 1952) with `flate2` on its pure-Rust `miniz_oxide`
//! back end. Gzip is what the W3C format prescribes, so the compressed bits are usable by
//! verifiers built for it; a mostly-zero 16 KiB list shrinks to a few hundred bytes; and
//! nothing needs a C compiler. zstd would compress a little better but brings a C library and
//! loses that compatibility. The signature covers the *uncompressed* bits, so a different
//! compressor version (which may emit different gzip bytes) never changes what is signed.
//!
//! # Signed bytes, version 2
//!
//! | #  | field          | encoding                                            |
//! |----|----------------|-----------------------------------------------------|
//! | 0  | domain         | string [`STATUS_LIST_DOMAIN`]                       |
//! | 1  | format version | `u8` = 2                                            |
//! | 2  | suite          | `u8` tag of the signing key                         |
//! | 3  | key_id         | 16 raw bytes                                        |
//! | 4  | authority      | string, 1 to 128 bytes                              |
//! | 5  | license_type   | string, 1 to 128 bytes                              |
//! | 6  | purpose        | `u8`: 1 revocation, 2 suspension                    |
//! | 7  | list           | `u32` list number within (authority, license_type)  |
//! | 8  | revision       | `u64`, increases with every published change        |
//! | 9  | issued_at_ms   | `u64`                                               |
//! | 10 | capacity       | `u32` number of entries, a multiple of 8            |
//! | 11 | bits           | capacity / 8 raw bytes                              |
//!
//! # Published bytes, version 2
//!
//! Domain string [`SIGNED_STATUS_LIST_DOMAIN`], version `u8` = 2, the seal (see
//! [`crate::payload`]), fields 4 to 10 as above, then the gzip bytes as a `u32`-length byte
//! string. Decoding inflates at most capacity / 8 + 1 bytes, so a small input cannot expand
//! into a large allocation.

use std::io::Read;

use rand::{CryptoRng, RngCore};

use crate::codec::{check_label, Reader, Writer};
use crate::error::SealError;
use crate::key_id::KeyId;
use crate::payload::{Seal, AUTHORITY_LEN_MAX};
use crate::suite::{PublicKey, SecretKey, Suite};

/// Fewest entries in a status list (16 KiB of bits).
pub const STATUS_LIST_CAPACITY_MIN: u32 = 131_072;

/// Most entries in a status list (2 MiB of bits).
pub const STATUS_LIST_CAPACITY_MAX: u32 = 1 << 24;

/// Domain string of the signed bytes.
pub const STATUS_LIST_DOMAIN: &str = "licstore status list";

/// Domain string of the published bytes.
pub const SIGNED_STATUS_LIST_DOMAIN: &str = "licstore signed status list";

const FORMAT_VERSION: u8 = 2;
const LICENSE_TYPE_LEN_MAX: usize = 128;

/// A fixed-capacity string of bits; position 0 is the most significant bit of byte 0.
#[derive(Clone, PartialEq, Eq)]
pub struct Bitstring {
    /// Invariant: `bytes.len() * 8` is the capacity, which lies in
    /// [`STATUS_LIST_CAPACITY_MIN`, `STATUS_LIST_CAPACITY_MAX`].
    bytes: Vec<u8>,
}

impl Bitstring {
    /// All-zero bits; `capacity` must be a multiple of 8 within the allowed range.
    pub fn new(capacity: u32) -> Result<Bitstring, SealError> {
        check_capacity(capacity)?;
        let length = usize::try_from(capacity / 8).unwrap_or(usize::MAX);
        Ok(Bitstring {
            bytes: vec![0; length],
        })
    }

    /// Bits from raw bytes; the capacity is eight times their length.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Bitstring, SealError> {
        let capacity = u32::try_from(bytes.len())
            .ok()
            .and_then(|length| length.checked_mul(8));
        check_capacity(capacity.unwrap_or(u32::MAX))?;
        Ok(Bitstring { bytes })
    }

    /// Number of entries.
    pub fn capacity(&self) -> u32 {
        // The invariant keeps this within u32.
        u32::try_from(self.bytes.len() * 8).unwrap_or(u32::MAX)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bit at `position`.
    pub fn get(&self, position: u32) -> Result<bool, SealError> {
        let (byte, mask) = self.locate(position)?;
        Ok(self.bytes[byte] & mask != 0)
    }

    /// Sets the bit at `position` to `value`.
    pub fn set(&mut self, position: u32, value: bool) -> Result<(), SealError> {
        let (byte, mask) = self.locate(position)?;
        if value {
            self.bytes[byte] |= mask;
        } else {
            self.bytes[byte] &= !mask;
        }
        Ok(())
    }

    /// How many bits are set.
    pub fn count_set(&self) -> u32 {
        self.bytes.iter().map(|byte| byte.count_ones()).sum()
    }

    fn locate(&self, position: u32) -> Result<(usize, u8), SealError> {
        if position >= self.capacity() {
            return Err(SealError::PositionOutOfRange {
                position,
                capacity: self.capacity(),
            });
        }
        let byte = usize::try_from(position / 8).unwrap_or(usize::MAX);
        Ok((byte, 0x80 >> (position % 8)))
    }

    /// The bits gzip-compressed (no file name, no time stamp).
    pub fn compress(&self) -> Vec<u8> {
        let mut encoder =
            flate2::read::GzEncoder::new(self.bytes.as_slice(), flate2::Compression::best());
        let mut out = Vec::new();
        // Reading from an in-memory slice cannot fail.
        let result = encoder.read_to_end(&mut out);
        debug_assert!(result.is_ok());
        out
    }

    /// Inflates gzip bytes that must hold exactly `capacity` bits and nothing after them.
    pub fn decompress(compressed: &[u8], capacity: u32) -> Result<Bitstring, SealError> {
        check_capacity(capacity)?;
        let expected = usize::try_from(capacity / 8).unwrap_or(usize::MAX);
        let error = |reason: String| SealError::Decode {
            field: "status_list.bits".into(),
            reason,
        };
        let mut decoder = flate2::bufread::GzDecoder::new(compressed);
        let mut bytes = Vec::with_capacity(expected);
        let limit = u64::try_from(expected)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        (&mut decoder)
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| error(format!("is not valid gzip: {e}")))?;
        if bytes.len() != expected {
            return Err(error(format!("inflates to other than {expected} bytes")));
        }
        let trailing = decoder.into_inner().len();
        if trailing != 0 {
            return Err(error(format!("{trailing} bytes after the gzip stream")));
        }
        Ok(Bitstring { bytes })
    }
}

impl std::fmt::Debug for Bitstring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (capacity, set) = (self.capacity(), self.count_set());
        write!(f, "Bitstring {{ capacity: {capacity}, set: {set} }}")
    }
}

fn check_capacity(capacity: u32) -> Result<(), SealError> {
    let range = STATUS_LIST_CAPACITY_MIN..=STATUS_LIST_CAPACITY_MAX;
    if !range.contains(&capacity) || !capacity.is_multiple_of(8) {
        let reason = format!(
            "{capacity} is not a multiple of 8 in {STATUS_LIST_CAPACITY_MIN}..={}",
            STATUS_LIST_CAPACITY_MAX
        );
        return Err(SealError::invalid_field("status_list.capacity", reason));
    }
    Ok(())
}

/// Picks a free position: the `(draw mod free)`-th clear bit of `used`, counting from 0.
///
/// Given a uniform 64-bit `draw`, every free position is equally likely up to a bias below
/// 2^-40 (free positions number at most 2^24). Pure: the same `used` and `draw` give the same
/// position on every replica. The caller then sets the bit in `used`.
pub fn allocate_position(used: &Bitstring, draw: u64) -> Result<u32, SealError> {
    let free = used.capacity() - used.count_set();
    if free == 0 {
        return Err(SealError::StatusListFull {
            capacity: used.capacity(),
        });
    }
    let mut rank = u32::try_from(draw % u64::from(free)).unwrap_or(0);
    for (index, byte) in used.bytes.iter().enumerate() {
        let free_here = byte.count_zeros();
        if rank < free_here {
            let base = u32::try_from(index * 8).unwrap_or(u32::MAX);
            return Ok(base + nth_clear_bit(*byte, rank));
        }
        rank -= free_here;
    }
    // Unreachable: `free` counted exactly the clear bits walked above.
    Err(SealError::StatusListFull {
        capacity: used.capacity(),
    })
}

/// Offset (0 = most significant) of the `rank`-th clear bit of `byte`; `rank` < its zeros.
fn nth_clear_bit(byte: u8, mut rank: u32) -> u32 {
    for offset in 0..8 {
        if byte & (0x80 >> offset) == 0 {
            if rank == 0 {
                return offset;
            }
            rank -= 1;
        }
    }
    debug_assert!(false, "rank {rank} beyond the clear bits of {byte:#04x}");
    7
}

/// [`allocate_position`] with a draw taken from `rng`.
pub fn allocate_random_position<R: RngCore + CryptoRng>(
    used: &Bitstring,
    rng: &mut R,
) -> Result<u32, SealError> {
    allocate_position(used, rng.next_u64())
}

/// What a set bit means in a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusPurpose {
    /// Set: the license is revoked, for good.
    Revocation,
    /// Set: the license is suspended (暂扣); it can be cleared again (发还).
    Suspension,
}

impl StatusPurpose {
    fn tag(self) -> u8 {
        match self {
            StatusPurpose::Revocation => 1,
            StatusPurpose::Suspension => 2,
        }
    }

    fn from_tag(tag: u8) -> Option<StatusPurpose> {
        [StatusPurpose::Revocation, StatusPurpose::Suspension]
            .into_iter()
            .find(|purpose| purpose.tag() == tag)
    }
}

/// One published status list of an authority for one license type and purpose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusListDoc {
    /// Code of the issuing authority.
    pub authority: String,
    /// License type code the list covers.
    pub license_type: String,
    /// What a set bit means.
    pub purpose: StatusPurpose,
    /// List number within (authority, license type): one list holds a bounded number of
    /// licenses, so an authority may have several.
    pub list: u32,
    /// Increases with every published change, so a verifier can refuse an older list.
    pub revision: u64,
    /// When this revision was published, ms since the Unix epoch.
    pub issued_at_ms: u64,
    /// The status bits.
    pub bits: Bitstring,
}

impl StatusListDoc {
    /// Checks the labels the encoding relies on.
    pub fn validate(&self) -> Result<(), SealError> {
        check_label("status_list.authority", &self.authority, AUTHORITY_LEN_MAX)?;
        check_label(
            "status_list.license_type",
            &self.license_type,
            LICENSE_TYPE_LEN_MAX,
        )
    }

    /// The signed bytes (see the module header) for a seal by the key `suite`, `key_id`.
    pub fn signed_bytes(&self, suite: Suite, key_id: KeyId) -> Vec<u8> {
        let mut w = Writer::default();
        w.header(STATUS_LIST_DOMAIN, FORMAT_VERSION);
        w.u8(suite.tag());
        w.raw(key_id.as_bytes());
        self.write_fields(&mut w);
        w.raw(self.bits.as_bytes());
        w.0
    }

    fn write_fields(&self, w: &mut Writer) {
        w.string(&self.authority);
        w.string(&self.license_type);
        w.u8(self.purpose.tag());
        w.u32(self.list);
        w.u64(self.revision);
        w.u64(self.issued_at_ms);
        w.u32(self.bits.capacity());
    }
}

/// A status list with its seal, as published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedStatusList {
    /// The list.
    pub doc: StatusListDoc,
    /// The authority's seal over [`StatusListDoc::signed_bytes`].
    pub seal: Seal,
}

impl SignedStatusList {
    /// The published bytes (see the module header).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.header(SIGNED_STATUS_LIST_DOMAIN, FORMAT_VERSION);
        self.seal.write(&mut w);
        self.doc.write_fields(&mut w);
        w.bytes(&self.doc.bits.compress());
        w.0
    }

    /// Decodes published bytes without checking the seal; see [`verify_status_list`].
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedStatusList, SealError> {
        let mut r = Reader::new(bytes);
        r.header(SIGNED_STATUS_LIST_DOMAIN, FORMAT_VERSION)?;
        let seal = Seal::read(&mut r)?;
        let authority = r.string("status_list.authority", AUTHORITY_LEN_MAX)?;
        let license_type = r.string("status_list.license_type", LICENSE_TYPE_LEN_MAX)?;
        let purpose_tag = r.u8("status_list.purpose")?;
        let purpose = StatusPurpose::from_tag(purpose_tag)
            .ok_or_else(|| r.error("status_list.purpose", format!("unknown tag {purpose_tag}")))?;
        let list = r.u32("status_list.list")?;
        let revision = r.u64("status_list.revision")?;
        let issued_at_ms = r.u64("status_list.issued_at_ms")?;
        let capacity = r.u32("status_list.capacity")?;
        check_capacity(capacity).map_err(SealError::into_decode)?;
        let compressed = r.bytes("status_list.bits", usize::MAX)?;
        r.finish("status_list")?;
        let doc = StatusListDoc {
            authority,
            license_type,
            purpose,
            list,
            revision,
            issued_at_ms,
            bits: Bitstring::decompress(compressed, capacity)?,
        };
        doc.validate().map_err(SealError::into_decode)?;
        Ok(SignedStatusList { doc, seal })
    }

    /// Checks that the seal names `public_key` and verifies over the signed bytes.
    pub fn verify(&self, public_key: &PublicKey) -> Result<(), SealError> {
        self.doc.validate()?;
        let message = self.doc.signed_bytes(self.seal.suite, self.seal.key_id);
        self.seal.verify(public_key, &message)
    }
}

/// Seals a status list with the authority's key.
pub fn sign_status_list(
    secret_key: &SecretKey,
    doc: StatusListDoc,
) -> Result<SignedStatusList, SealError> {
    doc.validate()?;
    let message = doc.signed_bytes(secret_key.suite(), secret_key.key_id());
    let seal = Seal::sign(secret_key, &message)?;
    Ok(SignedStatusList { doc, seal })
}

/// Decodes published bytes and verifies them under `public_key`.
pub fn verify_status_list(
    public_key: &PublicKey,
    bytes: &[u8],
) -> Result<StatusListDoc, SealError> {
    let signed = SignedStatusList::from_bytes(bytes)?;
    signed.verify(public_key)?;
    Ok(signed.doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::{any, prop_assert_eq, prop_assume, proptest};
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn doc(bits: Bitstring) -> StatusListDoc {
        StatusListDoc {
            authority: "11310000002420436Y".into(),
            license_type: "11100000000013338W032".into(),
            purpose: StatusPurpose::Revocation,
            list: 0,
            revision: 3,
            issued_at_ms: 1_735_689_600_000,
            bits,
        }
    }

    fn bits_with(positions: &[u32]) -> Bitstring {
        let mut bits = Bitstring::new(STATUS_LIST_CAPACITY_MIN).unwrap();
        for &position in positions {
            bits.set(position, true).unwrap();
        }
        bits
    }

    #[test]
    fn bits_follow_w3c_order_and_bounds() {
        let mut bits = bits_with(&[0, 9, STATUS_LIST_CAPACITY_MIN - 1]);
        assert_eq!(bits.as_bytes()[0], 0x80);
        assert_eq!(bits.as_bytes()[1], 0x40);
        assert_eq!(bits.as_bytes()[16_383], 0x01);
        assert_eq!(bits.count_set(), 3);
        bits.set(9, false).unwrap();
        assert_eq!(bits.get(9), Ok(false));
        assert_eq!(bits.get(0), Ok(true));
        let out = bits.get(STATUS_LIST_CAPACITY_MIN).unwrap_err();
        assert_eq!(out.field(), "status_list.position");
        assert!(bits.set(u32::MAX, true).is_err());
    }

    #[test]
    fn capacities_are_checked() {
        let cases = [
            (STATUS_LIST_CAPACITY_MIN, true),
            (STATUS_LIST_CAPACITY_MIN - 8, false),
            (STATUS_LIST_CAPACITY_MIN + 4, false),
            (STATUS_LIST_CAPACITY_MAX, true),
            (STATUS_LIST_CAPACITY_MAX + 8, false),
        ];
        for (capacity, ok) in cases {
            assert_eq!(Bitstring::new(capacity).is_ok(), ok, "{capacity}");
        }
        assert!(Bitstring::from_bytes(vec![0; 16_384]).is_ok());
        assert!(Bitstring::from_bytes(vec![0; 16_383]).is_err());
    }

    #[test]
    fn compression_round_trips_and_is_small() {
        let bits = bits_with(&[1, 500, 70_000, 131_071]);
        let compressed = bits.compress();
        assert!(compressed.len() < 200, "{} bytes", compressed.len());
        assert_eq!(
            Bitstring::decompress(&compressed, bits.capacity()),
            Ok(bits.clone())
        );
        let wrong_capacity = Bitstring::decompress(&compressed, bits.capacity() * 2);
        assert!(wrong_capacity.is_err());
        let mut trailing = compressed.clone();
        trailing.push(0);
        assert!(Bitstring::decompress(&trailing, bits.capacity()).is_err());
        let mut corrupt = compressed;
        let last = corrupt.len() - 5;
        corrupt[last] ^= 1;
        assert!(
            Bitstring::decompress(&corrupt, bits.capacity()).is_err(),
            "crc"
        );
    }

    #[test]
    fn allocation_picks_free_positions_uniformly_by_rank() {
        let used = bits_with(&[0, 1, 3]);
        let cases = [
            (0, 2),
            (1, 4),
            (2, 5),
            (u64::from(STATUS_LIST_CAPACITY_MIN - 3), 2),
        ];
        for (draw, expected) in cases {
            assert_eq!(allocate_position(&used, draw), Ok(expected), "draw {draw}");
        }
        let mut used = Bitstring::new(STATUS_LIST_CAPACITY_MIN).unwrap();
        let rng = &mut ChaCha20Rng::seed_from_u64(7);
        for _ in 0..1000 {
            let position = allocate_random_position(&used, rng).unwrap();
            assert_eq!(used.get(position), Ok(false));
            used.set(position, true).unwrap();
        }
        assert_eq!(used.count_set(), 1000);
    }

    #[test]
    fn a_full_list_refuses_allocation() {
        let mut used = Bitstring::from_bytes(vec![0xff; 16_384]).unwrap();
        let error = allocate_position(&used, 5).unwrap_err();
        assert_eq!(error, SealError::StatusListFull { capacity: 131_072 });
        used.set(77_777, false).unwrap();
        assert_eq!(allocate_position(&used, 12_345), Ok(77_777));
    }

    #[test]
    fn signed_lists_round_trip_for_both_suites() {
        for suite in Suite::ALL {
            let key = SecretKey::from_seed(suite, &[31; 32]).unwrap();
            let signed = sign_status_list(&key, doc(bits_with(&[42]))).unwrap();
            let bytes = signed.to_bytes();
            assert_eq!(SignedStatusList::from_bytes(&bytes), Ok(signed.clone()));
            let opened = verify_status_list(&key.public_key(), &bytes).unwrap();
            assert_eq!(opened.bits.get(42), Ok(true));
            let other = SecretKey::from_seed(suite, &[32; 32]).unwrap().public_key();
            assert!(verify_status_list(&other, &bytes).is_err());
        }
    }

    #[test]
    fn a_flipped_status_bit_breaks_the_seal() {
        let key = SecretKey::from_seed(Suite::Ed25519, &[33; 32]).unwrap();
        let signed = sign_status_list(&key, doc(bits_with(&[42]))).unwrap();
        for position in [0, 41, 42, 43, STATUS_LIST_CAPACITY_MIN - 1] {
            let mut tampered = signed.clone();
            let bit = tampered.doc.bits.get(position).unwrap();
            tampered.doc.bits.set(position, !bit).unwrap();
            let bytes = tampered.to_bytes();
            assert!(
                verify_status_list(&key.public_key(), &bytes).is_err(),
                "{position}"
            );
        }
        let mut newer = signed.clone();
        newer.doc.revision += 1;
        assert!(newer.verify(&key.public_key()).is_err());
        let mut suspended = signed;
        suspended.doc.purpose = StatusPurpose::Suspension;
        assert!(suspended.verify(&key.public_key()).is_err());
    }

    #[test]
    fn every_truncation_of_published_bytes_is_an_error() {
        let key = SecretKey::from_seed(Suite::Sm2Sm3, &[34; 32]).unwrap();
        let bytes = sign_status_list(&key, doc(bits_with(&[1])))
            .unwrap()
            .to_bytes();
        for length in 0..bytes.len() {
            assert!(
                SignedStatusList::from_bytes(&bytes[..length]).is_err(),
                "{length}"
            );
        }
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in vec(any::<u8>(), 0..512)) {
            let _ = SignedStatusList::from_bytes(&bytes);
            let _ = Bitstring::decompress(&bytes, STATUS_LIST_CAPACITY_MIN);
        }

        #[test]
        /// Gzip header bytes such as the OS byte are not signed, so a mutation may still
        /// verify; it must then yield exactly the signed document.
        fn mutated_lists_never_verify_as_another_document(
            index in 0usize..4096,
            value in any::<u8>(),
        ) {
            let key = SecretKey::from_seed(Suite::Ed25519, &[35; 32]).unwrap();
            let original = doc(bits_with(&[9]));
            let mut bytes = sign_status_list(&key, original.clone()).unwrap().to_bytes();
            let index = index % bytes.len();
            prop_assume!(bytes[index] != value);
            bytes[index] = value;
            if let Ok(opened) = verify_status_list(&key.public_key(), &bytes) {
                prop_assert_eq!(opened, original);
            }
        }
    }
}
