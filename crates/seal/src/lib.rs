//! Cryptographic building blocks for sealed licenses: pure functions, no I/O.
//!
//! Nothing here reads a file, the network or the clock. Times are parameters in ms since the
//! Unix epoch, and randomness comes in as caller-supplied bytes or a caller-supplied generator,
//! so the same inputs always give the same outputs and Raft apply code stays deterministic.
//!
//! How the pieces meet when a license is issued and later checked:
//!
//! ```text
//!  face fields --commit_fields--> FieldCommitment* --+      Disclosure* --> holder
//!  content digest -----------------------------------+--> SealedPayload --seal--> Seal
//!  issuing key (SecretKey) --------------------------+
//!
//!  verifier: verify_trust_list(root) --> TrustList::find(seal.key_id) --> KeyRecord
//!            verify_with_record(record, payload, seal) --> KeyVerdict
//!            check_disclosure(payload.field_commitments, disclosure)
//!            verify_status_list(authority key, list bytes) --> bit at the license's position
//! ```
//!
//! Map:
//!
//! * [`suite`]: the `ed25519` and `sm2-sm3` suites, secret and public keys, signatures.
//! * [`key_id`]: key ids derived from public keys.
//! * [`key_file`]: the text format of a secret key file.
//! * [`payload`]: the signed payload of a license and the [`Seal`] over it.
//! * [`lifecycle`]: key records and the verdict on a signature's time (rotation, revocation).
//! * [`bundle`]: what a sealed record stores: payload, seal and commitment salts.
//! * [`disclosure`]: salted per-field commitments for selective disclosure.
//! * [`presentation`]: what a holder shows to reveal chosen fields, and its check.
//! * [`status_list`]: bitstring status lists, random position allocation, compression.
//! * [`status_entry`]: the signed claim tying a license to its status-list position.
//! * [`trust_list`]: the signed list of trusted key records.
//! * [`export`]: the exported-license document and the trust file, for offline checks.
//! * [`token`]: signed bearer tokens (EdDSA JWTs) naming callers without a certificate.
//! * [`error`]: the crate's one error type; every error names its field.
//!
//! Invariants: nothing here panics on input, every decoder accepts only what its encoder
//! produces (the gzip framing of status lists aside, whose contents are what is signed), and
//! every signed byte string starts with a domain string naming its kind of document (bearer
//! tokens aside: they are standard JWTs, signed with keys kept for tokens alone).

pub mod bundle;
pub mod disclosure;
pub mod error;
pub mod export;
pub mod key_file;
pub mod key_id;
pub mod lifecycle;
pub mod payload;
pub mod presentation;
pub mod status_entry;
pub mod status_list;
pub mod suite;
pub mod token;
pub mod trust_list;

mod codec;

pub use bundle::SealBundle;
pub use disclosure::{check_disclosure, commit_field, commit_fields, Disclosure, FieldCommitment};
pub use error::SealError;
pub use export::{ExportDocument, TrustFile};
pub use key_file::{encode_key_file, parse_key_file};
pub use key_id::KeyId;
pub use lifecycle::{judge, verify_with_record, KeyRecord, KeyVerdict};
pub use payload::{salted_digest, seal, verify_seal, Seal, SealedPayload};
pub use presentation::{CheckedPresentation, Presentation};
pub use status_entry::{sign_status_entry, SignedStatusEntry, StatusEntryClaim};
pub use status_list::{
    allocate_position, allocate_random_position, sign_status_list, verify_status_list, Bitstring,
    SignedStatusList, StatusListDoc, StatusPurpose,
};
pub use suite::{verify, PublicKey, SecretKey, Signature, Suite, SM2_DEFAULT_DIST_ID};
pub use trust_list::{sign_trust_list, verify_trust_list, TrustList};
