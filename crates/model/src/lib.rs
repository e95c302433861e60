//! The license domain of licstore: pure rules, no I/O.
//!
//! This crate knows what a government e-license is and nothing about how it is stored, served
//! or replicated: no files, no network, no clock (callers pass "today" in). Reference data (the
//! GB/T 2260 region table and the pilot license templates) is embedded at compile time.
//!
//! Map:
//!
//! * [`holder`]: holder kinds and ID validation (GB 11643 citizen ID, GB 32100 USCC), with a
//!   strict and a lenient mode for legacy codes.
//! * [`identifier`]: the GB/T 36904 e-license identifier with its MOD 37,36 check character.
//! * [`status`]: national status codes and the status machine.
//! * [`template`]: license types as data, loaded from TOML, and face-data validation.
//! * [`license`]: the stored record, the issue request and its validation.
//! * [`canonical`]: the deterministic binary encoding and the content digest.
//! * [`date`], [`region`]: calendar dates and GB/T 2260 region codes.
//! * [`error`]: the crate's one error type; every error names its API field.
//!
//! Invariant: nothing here panics on input. Every parser returns `Result`.

pub mod audit;
pub mod canonical;
pub mod date;
pub mod error;
pub mod holder;
pub mod identifier;
pub mod license;
pub mod region;
pub mod status;
pub mod template;

pub use canonical::{content_digest, decode, decode_verified, encode, issued_digest};
pub use date::Date;
pub use error::ModelError;
pub use holder::{
    citizen_id_check_char, normalize_holder_id, uscc_check_char, validate_holder_id, CheckMode,
    Holder, HolderIdCheck, HolderKind,
};
pub use identifier::{mod37_36_check_char, Identifier, IDENTIFIER_ROOT};
pub use license::{
    build_license, is_core_field, validate_new_license, validate_new_license_with_limits,
    validate_status_reason, Issuer, License, Limits, NewLicense, ValidatedLicense, CORE_FIELDS,
    CORE_FIELD_PREFIX,
};
pub use region::{region_name, regions, Region};
pub use status::{apply_status_op, can_amend, LicenseStatus, StatusOp};
pub use template::{FieldKind, FieldSpec, LicenseTemplate, TemplateRegistry};
