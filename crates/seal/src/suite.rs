//! Signature suites behind one interface: Ed25519, and SM2 signatures over SM3 digests.
//!
//! * `ed25519` (RFC 8032, via `ed25519-dalek`): the fast internal suite. Verification is the
//!   strict variant, which rejects weak public keys and non-canonical signatures, so one message
//!   has one valid signature per key.
//! * `sm2-sm3` (GB/T 32918.2 with GB/T 32905, via RustCrypto `sm2`): the suite for seals that
//!   must interoperate with the national e-seal ecosystem. The signer's distinguishing ID goes
//!   into the hashed `Z` value, so signer and verifier must use the same ID; it travels with the
//!   public key. The nonce is derived deterministically from the key and message (RFC 6979 with
//!   SM3), so signing needs no randomness and the same input always gives the same signature.
//!
//! Keys are made from 32 caller-supplied random bytes; nothing here draws randomness or reads a
//! clock. Both suites produce 64-byte signatures (`R || S` for Ed25519, `r || s` big-endian
//! for SM2).
//!
//! # Public key encoding
//!
//! [`PublicKey::to_bytes`] is the canonical form used in key ids and trust lists:
//!
//! | suite     | bytes                                                                  |
//! |-----------|------------------------------------------------------------------------|
//! | `ed25519` | tag 1, then the 32-byte compressed point                               |
//! | `sm2-sm3` | tag 2, the 65-byte SEC1 uncompressed point, a `u8` ID length, the ID   |

use std::fmt;

// Both back ends implement the traits of the same `signature` 3 crate.
use sm2::dsa::signature::{Signer as _, Verifier as _};

use crate::codec::hex_encode;
use crate::error::SealError;
use crate::key_id::KeyId;

/// The GB/T 32918 default distinguishing ID, used unless a key names another.
pub const SM2_DEFAULT_DIST_ID: &str = "1234567812345678";

/// Longest distinguishing ID accepted, in bytes.
pub const SM2_DIST_ID_LEN_MAX: usize = 255;

/// Length of a signature in either suite, in bytes.
pub const SIGNATURE_LEN: usize = 64;

const ED25519_PUBLIC_LEN: usize = 32;
const SM2_PUBLIC_LEN: usize = 65;

/// SM2 curve order minus one, big-endian. A secret of n - 1 makes `1 + d` zero, so it is
/// refused (GB/T 32918.1 asks for d in [1, n - 2]).
const SM2_ORDER_MINUS_ONE: [u8; 32] = [
    0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x72, 0x03, 0xdf, 0x6b, 0x21, 0xc6, 0x05, 0x2b, 0x53, 0xbb, 0xf4, 0x09, 0x39, 0xd5, 0x41, 0x22,
];

/// A signature algorithm together with its hash; the unit of interoperability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Suite {
    /// Ed25519 (RFC 8032, pure mode).
    Ed25519,
    /// SM2 digital signature with the SM3 hash (GB/T 32918.2, GB/T 32905).
    Sm2Sm3,
}

impl Suite {
    /// Every suite, in tag order.
    pub const ALL: [Suite; 2] = [Suite::Ed25519, Suite::Sm2Sm3];

    /// The stable name used in key files and logs.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Ed25519 => "ed25519",
            Suite::Sm2Sm3 => "sm2-sm3",
        }
    }

    /// The stable one-byte tag used in binary encodings; 0 is never a tag.
    pub fn tag(self) -> u8 {
        match self {
            Suite::Ed25519 => 1,
            Suite::Sm2Sm3 => 2,
        }
    }

    /// The suite with this tag, if any.
    pub fn from_tag(tag: u8) -> Option<Suite> {
        Suite::ALL.into_iter().find(|suite| suite.tag() == tag)
    }

    /// The suite with this name, if any.
    pub fn from_name(name: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|suite| suite.name() == name)
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Signature bytes as produced by [`SecretKey::sign`].
#[derive(Clone, PartialEq, Eq)]
pub struct Signature(Vec<u8>);

impl Signature {
    /// Wraps signature bytes; their length is checked when they are verified.
    pub fn from_bytes(bytes: Vec<u8>) -> Signature {
        Signature(bytes)
    }

    /// The raw signature bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex_encode(&self.0))
    }
}

/// A verifying key of either suite.
#[derive(Clone)]
pub struct PublicKey(PublicInner);

#[derive(Clone)]
enum PublicInner {
    Ed25519(ed25519_dalek::VerifyingKey),
    /// The `sm2` verifying key also holds the distinguishing ID and its `Z` hash.
    Sm2(sm2::dsa::VerifyingKey),
}

impl PublicKey {
    /// Builds a key from its raw point bytes: 32 bytes for `ed25519`, the 65-byte SEC1
    /// uncompressed point for `sm2-sm3`. `dist_id` must be `None` for `ed25519`; for `sm2-sm3`
    /// `None` means [`SM2_DEFAULT_DIST_ID`].
    pub fn from_raw(suite: Suite, raw: &[u8], dist_id: Option<&str>) -> Result<Self, SealError> {
        match suite {
            Suite::Ed25519 => {
                if dist_id.is_some() {
                    let reason = "ed25519 keys have no distinguishing id";
                    return Err(SealError::invalid_field("public_key.dist_id", reason));
                }
                ed25519_public(raw)
            }
            Suite::Sm2Sm3 => sm2_public(raw, dist_id.unwrap_or(SM2_DEFAULT_DIST_ID)),
        }
    }

    /// The suite this key belongs to.
    pub fn suite(&self) -> Suite {
        match &self.0 {
            PublicInner::Ed25519(_) => Suite::Ed25519,
            PublicInner::Sm2(_) => Suite::Sm2Sm3,
        }
    }

    /// The SM2 distinguishing ID; `None` for Ed25519.
    pub fn dist_id(&self) -> Option<&str> {
        match &self.0 {
            PublicInner::Ed25519(_) => None,
            PublicInner::Sm2(key) => Some(key.distid()),
        }
    }

    /// The raw point bytes accepted by [`PublicKey::from_raw`].
    pub fn raw_bytes(&self) -> Vec<u8> {
        match &self.0 {
            PublicInner::Ed25519(key) => key.to_bytes().to_vec(),
            PublicInner::Sm2(key) => key.to_sec1_bytes().into_vec(),
        }
    }

    /// The canonical encoding described in the module header.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.suite().tag()];
        out.extend_from_slice(&self.raw_bytes());
        if let Some(dist_id) = self.dist_id() {
            // Constructors keep the ID at most SM2_DIST_ID_LEN_MAX (255) bytes.
            out.push(u8::try_from(dist_id.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(dist_id.as_bytes());
        }
        out
    }

    /// Parses the canonical encoding; any other input is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        let decode = |reason: &str| SealError::Decode {
            field: "public_key".into(),
            reason: reason.into(),
        };
        let (&tag, rest) = bytes.split_first().ok_or_else(|| decode("is empty"))?;
        match Suite::from_tag(tag) {
            Some(Suite::Ed25519) => PublicKey::from_raw(Suite::Ed25519, rest, None),
            Some(Suite::Sm2Sm3) => {
                let (point, rest) = rest
                    .split_at_checked(SM2_PUBLIC_LEN)
                    .ok_or_else(|| decode("sm2 point is truncated"))?;
                let (&id_len, id) = rest.split_first().ok_or_else(|| decode("no id length"))?;
                if id.len() != usize::from(id_len) {
                    return Err(decode("distinguishing id length does not match"));
                }
                let id = std::str::from_utf8(id).map_err(|_| decode("id is not UTF-8"))?;
                PublicKey::from_raw(Suite::Sm2Sm3, point, Some(id))
            }
            None => Err(decode(&format!("unknown suite tag {tag}"))),
        }
    }

    /// The key id derived from [`PublicKey::to_bytes`].
    pub fn key_id(&self) -> KeyId {
        KeyId::derive(self)
    }

    /// Checks `signature` over `message`; see [`verify`].
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), SealError> {
        let bad = || SealError::BadSignature {
            key_id: self.key_id(),
        };
        let bytes: &[u8; SIGNATURE_LEN] = signature.as_bytes().try_into().map_err(|_| bad())?;
        let verified = match &self.0 {
            PublicInner::Ed25519(key) => {
                let signature = ed25519_dalek::Signature::from_bytes(bytes);
                key.verify_strict(message, &signature).is_ok()
            }
            PublicInner::Sm2(key) => sm2::dsa::Signature::from_slice(bytes)
                .and_then(|signature| key.verify(message, &signature))
                .is_ok(),
        };
        if verified {
            Ok(())
        } else {
            Err(bad())
        }
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes() == other.to_bytes()
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.suite(), self.key_id())
    }
}

fn ed25519_public(raw: &[u8]) -> Result<PublicKey, SealError> {
    let invalid = |reason: &str| SealError::invalid_field("public_key", reason);
    let bytes: &[u8; ED25519_PUBLIC_LEN] = raw
        .try_into()
        .map_err(|_| invalid("ed25519 keys are 32 bytes"))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(bytes)
        .map_err(|_| invalid("is not a valid ed25519 point"))?;
    if key.is_weak() {
        return Err(invalid("is a small-order ed25519 point"));
    }
    Ok(PublicKey(PublicInner::Ed25519(key)))
}

fn sm2_public(raw: &[u8], dist_id: &str) -> Result<PublicKey, SealError> {
    check_dist_id("public_key.dist_id", dist_id)?;
    let invalid = |reason: &str| SealError::invalid_field("public_key", reason);
    // Only the uncompressed form is accepted, so each key has one encoding and one key id.
    if raw.len() != SM2_PUBLIC_LEN || raw[0] != 0x04 {
        return Err(invalid("sm2 keys are 65-byte SEC1 uncompressed points"));
    }
    let key = sm2::dsa::VerifyingKey::from_sec1_bytes(dist_id, raw)
        .map_err(|_| invalid("is not a point on the sm2 curve"))?;
    Ok(PublicKey(PublicInner::Sm2(key)))
}

/// A distinguishing ID is 1 to 255 bytes of printable ASCII without spaces, so it fits one
/// key-file line and one length byte.
fn check_dist_id(field: &str, dist_id: &str) -> Result<(), SealError> {
    if dist_id.is_empty() || dist_id.len() > SM2_DIST_ID_LEN_MAX {
        let reason = format!("must be 1 to {SM2_DIST_ID_LEN_MAX} bytes");
        return Err(SealError::invalid_field(field, reason));
    }
    if !dist_id.bytes().all(|b| b.is_ascii_graphic()) {
        let reason = "must be printable ASCII without spaces";
        return Err(SealError::invalid_field(field, reason));
    }
    Ok(())
}

/// Verifies `signature` over `message` under `public_key`.
///
/// A signature of the wrong length, a malformed one and a wrong one all give the same
/// [`SealError::BadSignature`].
pub fn verify(
    public_key: &PublicKey,
    message: &[u8],
    signature: &Signature,
) -> Result<(), SealError> {
    public_key.verify(message, signature)
}

/// A signing key of either suite. Its `Debug` output shows the suite and key id only.
#[derive(Clone)]
pub struct SecretKey(SecretInner);

#[derive(Clone)]
enum SecretInner {
    Ed25519(ed25519_dalek::SigningKey),
    Sm2(sm2::dsa::SigningKey),
}

impl SecretKey {
    /// A key of `suite` from 32 caller-supplied random bytes; SM2 keys get the default
    /// distinguishing ID.
    ///
    /// For `ed25519` the bytes are the RFC 8032 secret key. For `sm2-sm3` they are the secret
    /// scalar, big-endian, and must lie in [1, n - 2]; the odds that random bytes do not are
    /// about 2^-32, and the caller then draws again.
    pub fn from_seed(suite: Suite, seed: &[u8; 32]) -> Result<SecretKey, SealError> {
        match suite {
            Suite::Ed25519 => Ok(SecretKey::ed25519_from_seed(seed)),
            Suite::Sm2Sm3 => SecretKey::sm2_from_seed(seed, SM2_DEFAULT_DIST_ID),
        }
    }

    /// An Ed25519 key from its 32 secret bytes.
    pub fn ed25519_from_seed(seed: &[u8; 32]) -> SecretKey {
        SecretKey(SecretInner::Ed25519(ed25519_dalek::SigningKey::from_bytes(
            seed,
        )))
    }

    /// An SM2 key from its secret scalar bytes and a distinguishing ID.
    pub fn sm2_from_seed(seed: &[u8; 32], dist_id: &str) -> Result<SecretKey, SealError> {
        check_dist_id("secret_key.dist_id", dist_id)?;
        let invalid = || SealError::invalid_field("secret_key", "sm2 secret is not in [1, n-2]");
        if *seed == SM2_ORDER_MINUS_ONE {
            return Err(invalid());
        }
        let key = sm2::dsa::SigningKey::from_slice(dist_id, seed).map_err(|_| invalid())?;
        Ok(SecretKey(SecretInner::Sm2(key)))
    }

    /// The suite of this key.
    pub fn suite(&self) -> Suite {
        match &self.0 {
            SecretInner::Ed25519(_) => Suite::Ed25519,
            SecretInner::Sm2(_) => Suite::Sm2Sm3,
        }
    }

    /// The 32 secret bytes accepted by [`SecretKey::from_seed`]. Handle with care.
    pub fn secret_bytes(&self) -> [u8; 32] {
        match &self.0 {
            SecretInner::Ed25519(key) => key.to_bytes(),
            SecretInner::Sm2(key) => key.to_bytes().into(),
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match &self.0 {
            SecretInner::Ed25519(key) => PublicKey(PublicInner::Ed25519(key.verifying_key())),
            SecretInner::Sm2(key) => PublicKey(PublicInner::Sm2(key.verifying_key().clone())),
        }
    }

    /// The key id of the matching public key.
    pub fn key_id(&self) -> KeyId {
        self.public_key().key_id()
    }

    /// Signs `message`. Both suites are deterministic: the same key and message give the same
    /// signature. SM2 signing can fail only with negligible probability (a derived nonce that
    /// the standard says to discard).
    pub fn sign(&self, message: &[u8]) -> Result<Signature, SealError> {
        let bytes = match &self.0 {
            SecretInner::Ed25519(key) => key.sign(message).to_bytes(),
            SecretInner::Sm2(key) => {
                let signature: sm2::dsa::Signature = key
                    .try_sign(message)
                    .map_err(|_| SealError::invalid_field("signature", "sm2 signing failed"))?;
                signature.to_bytes().into()
            }
        };
        Ok(Signature(bytes.to_vec()))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({} {})", self.suite(), self.key_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::hex_decode;

    /// RFC 8032 section 7.1, test 1: the empty message.
    const RFC8032_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC8032_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const RFC8032_SIGNATURE: &str = concat!(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155",
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    );

    pub(crate) fn ed25519_key() -> SecretKey {
        SecretKey::ed25519_from_seed(&[7; 32])
    }

    pub(crate) fn sm2_key() -> SecretKey {
        SecretKey::from_seed(Suite::Sm2Sm3, &[9; 32]).unwrap()
    }

    #[test]
    fn rfc8032_test_1_known_answer() {
        let seed = hex_decode::<32>(RFC8032_SECRET).unwrap();
        let key = SecretKey::from_seed(Suite::Ed25519, &seed).unwrap();
        let public = key.public_key();
        assert_eq!(
            public.raw_bytes(),
            hex_decode::<32>(RFC8032_PUBLIC).unwrap()
        );
        let signature = key.sign(b"").unwrap();
        assert_eq!(
            signature.as_bytes(),
            hex_decode::<64>(RFC8032_SIGNATURE).unwrap()
        );
        assert_eq!(verify(&public, b"", &signature), Ok(()));
        assert!(verify(&public, b"x", &signature).is_err());
    }

    #[test]
    fn both_suites_round_trip_and_reject_other_messages() {
        for key in [ed25519_key(), sm2_key()] {
            let public = key.public_key();
            let signature = key.sign(b"license").unwrap();
            assert_eq!(signature.as_bytes().len(), SIGNATURE_LEN);
            assert_eq!(key.sign(b"license").unwrap(), signature, "deterministic");
            assert_eq!(public.verify(b"license", &signature), Ok(()));
            let error = public.verify(b"licensE", &signature).unwrap_err();
            assert_eq!(
                error,
                SealError::BadSignature {
                    key_id: key.key_id()
                }
            );
            let short = Signature::from_bytes(signature.as_bytes()[..63].to_vec());
            assert!(public.verify(b"license", &short).is_err());
        }
    }

    #[test]
    fn sm2_signature_does_not_verify_under_another_dist_id() {
        let seed = [9; 32];
        let signer = SecretKey::sm2_from_seed(&seed, "alice@example.gov.cn").unwrap();
        let signature = signer.sign(b"license").unwrap();
        let raw = signer.public_key().raw_bytes();
        for (dist_id, ok) in [
            (Some("alice@example.gov.cn"), true),
            (None, false),
            (Some("x"), false),
        ] {
            let public = PublicKey::from_raw(Suite::Sm2Sm3, &raw, dist_id).unwrap();
            assert_eq!(
                public.verify(b"license", &signature).is_ok(),
                ok,
                "{dist_id:?}"
            );
        }
        let default = SecretKey::sm2_from_seed(&seed, SM2_DEFAULT_DIST_ID).unwrap();
        assert_ne!(
            default.key_id(),
            signer.key_id(),
            "the id is part of the key identity"
        );
    }

    #[test]
    fn public_keys_round_trip_through_bytes() {
        let with_id = SecretKey::sm2_from_seed(&[3; 32], "dept-01").unwrap();
        for key in [ed25519_key(), sm2_key(), with_id] {
            let public = key.public_key();
            let decoded = PublicKey::from_bytes(&public.to_bytes()).unwrap();
            assert_eq!(decoded, public);
            assert_eq!(decoded.dist_id(), public.dist_id());
            let secret = SecretKey::from_seed(key.suite(), &key.secret_bytes()).unwrap();
            assert_eq!(secret.public_key().raw_bytes(), public.raw_bytes());
        }
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let sm2_raw = sm2_key().public_key().raw_bytes();
        let mut compressed = sm2_raw[..33].to_vec();
        compressed[0] = 0x02 | (sm2_raw[64] & 1);
        let mut off_curve = sm2_raw.clone();
        off_curve[64] ^= 1;
        let cases: [(Suite, &[u8], Option<&str>); 7] = [
            (Suite::Ed25519, &[0; 31], None),
            (Suite::Ed25519, &[0; 32], None),
            (Suite::Ed25519, &sm2_raw[1..33], Some("1234")),
            (Suite::Sm2Sm3, &compressed, None),
            (Suite::Sm2Sm3, &off_curve, None),
            (Suite::Sm2Sm3, &sm2_raw, Some("")),
            (Suite::Sm2Sm3, &sm2_raw, Some("has space")),
        ];
        for (suite, raw, dist_id) in cases {
            assert!(
                PublicKey::from_raw(suite, raw, dist_id).is_err(),
                "{suite} {dist_id:?}"
            );
        }
        for bytes in [&[][..], &[0], &[3], &[2, 4], &[1, 1, 2]] {
            assert!(PublicKey::from_bytes(bytes).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn out_of_range_sm2_secrets_are_rejected() {
        let mut order = SM2_ORDER_MINUS_ONE;
        order[31] += 1;
        for seed in [[0; 32], SM2_ORDER_MINUS_ONE, order, [0xff; 32]] {
            assert!(SecretKey::sm2_from_seed(&seed, SM2_DEFAULT_DIST_ID).is_err());
        }
        let mut below = SM2_ORDER_MINUS_ONE;
        below[31] -= 1;
        assert!(SecretKey::sm2_from_seed(&below, SM2_DEFAULT_DIST_ID).is_ok());
    }

    #[test]
    fn suite_names_and_tags_are_stable() {
        let cases = [
            (Suite::Ed25519, "ed25519", 1),
            (Suite::Sm2Sm3, "sm2-sm3", 2),
        ];
        for (suite, name, tag) in cases {
            assert_eq!((suite.name(), suite.tag()), (name, tag));
            assert_eq!(Suite::from_name(name), Some(suite));
            assert_eq!(Suite::from_tag(tag), Some(suite));
        }
        assert_eq!(Suite::from_tag(0), None);
        assert_eq!(Suite::from_name("rsa"), None);
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let key = ed25519_key();
        let text = format!("{key:?}");
        assert!(!text.contains(&hex_encode(&key.secret_bytes())));
        assert!(text.starts_with("SecretKey(ed25519 "));
    }
}
