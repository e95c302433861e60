//! The stored license record and the validation of a request to issue one.
//!
//! Issuing goes in three pure steps; the caller (the server) owns everything with side effects
//! such as choosing a serial and proposing the record to Raft:
//!
//! 1. [`validate_new_license`] checks a [`NewLicense`] against the template registry and returns
//!    the template and the holder-ID check outcome, or the first error naming its API field.
//! 2. The caller builds an [`Identifier`] (type code, issuer code, serial, version 1).
//! 3. [`build_license`] assembles the [`License`] with status `Valid`, revision 0 and its content
//!    digest.
//!
//! A [`License`]'s `digest` covers every field except `revision` and `digest` itself (see
//! [`crate::canonical`]). Any code that changes a content field, the status included, must call
//! [`License::refresh_digest`] afterwards.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::canonical::content_digest;
use crate::date::Date;
use crate::error::ModelError;
use crate::holder::{validate_holder_id, HOLDER_ID_CHARS};
use crate::holder::{validate_uscc, CheckMode, Holder, HolderIdCheck};
use crate::identifier::{check_serial_any_case, Identifier};
use crate::region::{is_known_province, is_known_region_code, is_six_digits};
use crate::status::LicenseStatus;
use crate::template::{LicenseTemplate, TemplateRegistry};

/// The office that issues a license (颁发机构).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Issuer {
    /// The office's USCC, or a 6-digit region code for local systems that use one.
    pub code: String,
    /// The office's name.
    pub name: String,
}

/// One version of one license, as stored and replicated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct License {
    /// Full GB/T 36904 identifier, including the version and check character.
    pub identifier: String,
    /// 21-character license type code; equals the identifier's type segment.
    pub type_code: String,
    /// Who the license is issued to.
    pub holder: Holder,
    /// The number printed on the face (证照编号).
    pub license_number: String,
    /// Who issued it.
    pub issuer: Issuer,
    /// Date of issue.
    pub issue_date: Date,
    /// First day of validity.
    pub valid_from: Date,
    /// Last day of validity; `None` means long-term (长期).
    pub valid_until: Option<Date>,
    /// GB/T 2260 code of the jurisdiction (证照所属管辖属地).
    pub region_code: String,
    /// Face data (证照照面信息), validated against the type's template.
    pub face: BTreeMap<String, String>,
    /// Recorded status; see [`License::effective_status`] for expiry by date.
    pub status: LicenseStatus,
    /// Free-text reason of the last status change (required for `Other`).
    pub status_reason: Option<String>,
    /// Version number; equals the identifier's version segment.
    pub version: u16,
    /// Identifier of the previous version (关联证照标识), if this one renews or changes it.
    pub replaces: Option<String>,
    /// Identifier of the version that replaced this one, once there is one.
    pub superseded_by: Option<String>,
    /// Store revision, bumped on every write; not part of the digest.
    pub revision: u64,
    /// BLAKE3 content digest; see [`crate::canonical::content_digest`].
    pub digest: [u8; 32],
    /// The issuing authority's seal bundle (`licstore-seal` format); empty when unsealed. Not
    /// part of either digest: it signs the issued content (see [`crate::canonical`]).
    pub seal: Vec<u8>,
}

impl License {
    /// True when `valid_until` has passed: the license is expired from the day after it.
    pub fn is_expired_on(&self, today: Date) -> bool {
        self.valid_until.is_some_and(|until| until < today)
    }

    /// The status a reader should see today: a valid or suspended license whose validity has
    /// passed is `Expired` even before the expiry sweep records it (the sweep expires both);
    /// every other status is as stored.
    pub fn effective_status(&self, today: Date) -> LicenseStatus {
        match self.status {
            LicenseStatus::Valid | LicenseStatus::Suspended if self.is_expired_on(today) => {
                LicenseStatus::Expired
            }
            status => status,
        }
    }

    /// Recomputes `digest` after a content change.
    pub fn refresh_digest(&mut self) {
        self.digest = content_digest(self);
    }

    /// True when `digest` matches the content.
    pub fn digest_matches(&self) -> bool {
        self.digest == content_digest(self)
    }

    /// Every field a holder may reveal on its own, by name: the face fields under their own
    /// (snake_case) names and the issued fields under [`CORE_FIELD_PREFIX`]-prefixed names,
    /// which no face field can take. Dates are `YYYY-MM-DD`; a long-term license has an
    /// empty `@valid_until`. Each one is committed to separately in the seal.
    pub fn disclosable_fields(&self) -> BTreeMap<String, String> {
        let mut fields = self.face.clone();
        let values: [String; CORE_FIELDS.len()] = [
            self.identifier.clone(),
            self.type_code.clone(),
            self.holder.kind.as_code().to_owned(),
            self.holder.id.clone(),
            self.holder.name.clone(),
            self.license_number.clone(),
            self.issuer.code.clone(),
            self.issuer.name.clone(),
            self.issue_date.to_string(),
            self.valid_from.to_string(),
            self.valid_until.map(|d| d.to_string()).unwrap_or_default(),
            self.region_code.clone(),
        ];
        let core = CORE_FIELDS.into_iter().zip(values);
        for (name, value) in core {
            fields.insert(format!("{CORE_FIELD_PREFIX}{name}"), value);
        }
        fields
    }
}

/// Prefix of the names under which [`License::disclosable_fields`] lists the issued fields.
pub const CORE_FIELD_PREFIX: &str = "@";

/// The issued fields [`License::disclosable_fields`] lists, without [`CORE_FIELD_PREFIX`].
pub const CORE_FIELDS: [&str; 12] = [
    "identifier",
    "type_code",
    "holder.kind",
    "holder.id",
    "holder.name",
    "license_number",
    "issuer.code",
    "issuer.name",
    "issue_date",
    "valid_from",
    "valid_until",
    "region_code",
];

/// Whether `name` is a [`CORE_FIELD_PREFIX`]-prefixed issued field.
pub fn is_core_field(name: &str) -> bool {
    name.strip_prefix(CORE_FIELD_PREFIX)
        .is_some_and(|rest| CORE_FIELDS.contains(&rest))
}

/// A request to issue a license, before an identifier is assigned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLicense {
    /// 21-character type code (a template key is not accepted here).
    pub type_code: String,
    /// The holder; `legacy_checksum` is ignored on input and set from validation.
    pub holder: Holder,
    /// The number printed on the face.
    pub license_number: String,
    /// The issuing office.
    pub issuer: Issuer,
    /// Date of issue; not after today.
    pub issue_date: Date,
    /// First day of validity.
    pub valid_from: Date,
    /// Last day of validity, not before `valid_from`; `None` for long-term.
    pub valid_until: Option<Date>,
    /// Jurisdiction code.
    pub region_code: String,
    /// Face data.
    pub face: BTreeMap<String, String>,
    /// Requested identifier serial (`0-9A-Za-z`, 1..=64; uppercased in the identifier);
    /// `None` lets the server assign one.
    pub serial: Option<String>,
}

/// Size limits for free-text fields, in characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Holder name.
    pub max_name_chars: usize,
    /// Issuer name.
    pub max_issuer_name_chars: usize,
    /// License number.
    pub max_license_number_chars: usize,
    /// Status change reason.
    pub max_reason_chars: usize,
    /// Number of face fields.
    pub max_face_fields: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_name_chars: 128,
            max_issuer_name_chars: 128,
            max_license_number_chars: 128,
            max_reason_chars: 512,
            max_face_fields: 64,
        }
    }
}

/// What a successful validation found out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidatedLicense<'a> {
    /// The template of the requested type.
    pub template: &'a LicenseTemplate,
    /// The holder-ID check outcome; pass `legacy_checksum` on to [`build_license`].
    pub holder_check: HolderIdCheck,
}

/// Validates a request with the default [`Limits`].
pub fn validate_new_license<'a>(
    new: &NewLicense,
    templates: &'a TemplateRegistry,
    mode: CheckMode,
    today: Date,
) -> Result<ValidatedLicense<'a>, ModelError> {
    validate_new_license_with_limits(new, templates, mode, today, &Limits::default())
}

/// Validates a request; every error names the API field it concerns.
pub fn validate_new_license_with_limits<'a>(
    new: &NewLicense,
    templates: &'a TemplateRegistry,
    mode: CheckMode,
    today: Date,
    limits: &Limits,
) -> Result<ValidatedLicense<'a>, ModelError> {
    let template = lookup_template(&new.type_code, templates)?;
    let holder_check = validate_holder(&new.holder, template, mode, today, limits)?;
    let number_limit = limits.max_license_number_chars;
    check_text("license_number", &new.license_number, number_limit)?;
    validate_issuer(&new.issuer, limits)?;
    validate_region_code(&new.region_code)?;
    validate_dates(new, today)?;
    validate_face(&new.face, template, limits)?;
    if let Some(serial) = &new.serial {
        check_serial_any_case(serial, "serial")?;
    }
    Ok(ValidatedLicense {
        template,
        holder_check,
    })
}

/// Assembles the stored record: status `Valid`, version from the identifier, revision 0, digest
/// computed. The caller must have validated `new` and built `identifier` from its type code.
pub fn build_license(new: NewLicense, identifier: Identifier, legacy_checksum: bool) -> License {
    debug_assert_eq!(identifier.type_code(), new.type_code);
    let mut license = License {
        identifier: identifier.to_string(),
        type_code: new.type_code,
        holder: Holder {
            legacy_checksum,
            ..new.holder
        },
        license_number: new.license_number,
        issuer: new.issuer,
        issue_date: new.issue_date,
        valid_from: new.valid_from,
        valid_until: new.valid_until,
        region_code: new.region_code,
        face: new.face,
        status: LicenseStatus::Valid,
        status_reason: None,
        version: identifier.version(),
        replaces: None,
        superseded_by: None,
        revision: 0,
        digest: [0; 32],
        seal: Vec::new(),
    };
    license.refresh_digest();
    license
}

/// Checks a status-change reason against the limits; `None` is allowed.
pub fn validate_status_reason(reason: Option<&str>, limits: &Limits) -> Result<(), ModelError> {
    match reason {
        Some(text) => check_text("status_reason", text, limits.max_reason_chars),
        None => Ok(()),
    }
}

fn lookup_template<'a>(
    type_code: &str,
    templates: &'a TemplateRegistry,
) -> Result<&'a LicenseTemplate, ModelError> {
    let template = templates.get(type_code)?;
    if template.type_code != type_code {
        let reason = format!(
            "use the 21-character type code {} rather than the key {}",
            template.type_code, template.key
        );
        return Err(ModelError::invalid_field("type_code", reason));
    }
    Ok(template)
}

fn validate_holder(
    holder: &Holder,
    template: &LicenseTemplate,
    mode: CheckMode,
    today: Date,
    limits: &Limits,
) -> Result<HolderIdCheck, ModelError> {
    if holder.kind != template.holder_kind {
        let reason = format!(
            "{} is issued to {} holders, not {}",
            template.key, template.holder_kind, holder.kind
        );
        return Err(ModelError::invalid_field("holder.kind", reason));
    }
    let check = validate_holder_id(holder.kind, &holder.id, mode, today)?;
    check_text("holder.name", &holder.name, limits.max_name_chars)?;
    Ok(check)
}

/// Issuer codes are checked strictly in every mode: issuers are government offices whose codes
/// go into identifiers we mint, so a legacy exception has no place here.
fn validate_issuer(issuer: &Issuer, limits: &Limits) -> Result<(), ModelError> {
    const FIELD: &str = "issuer.code";
    let code = issuer.code.as_str();
    if is_six_digits(code) {
        if !is_known_province(&code[..2]) {
            let reason = format!("region code {code} is not in a known GB/T 2260 province");
            return Err(ModelError::invalid_field(FIELD, reason));
        }
    } else if code.chars().count() == HOLDER_ID_CHARS {
        validate_uscc(code, CheckMode::Strict, FIELD)?;
    } else {
        let reason = "must be an 18-character USCC or a 6-digit region code";
        return Err(ModelError::invalid_field(FIELD, reason));
    }
    check_text("issuer.name", &issuer.name, limits.max_issuer_name_chars)
}

fn validate_region_code(code: &str) -> Result<(), ModelError> {
    if is_known_region_code(code) {
        return Ok(());
    }
    let shown: String = code.chars().take(16).collect();
    let reason = format!("{shown:?} is not a known GB/T 2260 county or province code");
    Err(ModelError::invalid_field("region_code", reason))
}

fn validate_dates(new: &NewLicense, today: Date) -> Result<(), ModelError> {
    if new.issue_date > today {
        let reason = format!("{} is after today ({today})", new.issue_date);
        return Err(ModelError::invalid_field("issue_date", reason));
    }
    match new.valid_until {
        Some(until) if until < new.valid_from => {
            let reason = format!("{until} is before valid_from {}", new.valid_from);
            Err(ModelError::invalid_field("valid_until", reason))
        }
        _ => Ok(()),
    }
}

fn validate_face(
    face: &BTreeMap<String, String>,
    template: &LicenseTemplate,
    limits: &Limits,
) -> Result<(), ModelError> {
    if face.len() > limits.max_face_fields {
        let reason = format!("{} fields, at most {}", face.len(), limits.max_face_fields);
        return Err(ModelError::invalid_field("face", reason));
    }
    template.validate_face(face)
}

/// A non-blank, single-line text of at most `max_chars` characters.
fn check_text(field: &str, value: &str, max_chars: usize) -> Result<(), ModelError> {
    let chars = value.chars().count();
    if !value
        .chars()
        .any(|c| !c.is_whitespace() && !is_invisible(c))
    {
        return Err(ModelError::invalid_field(
            field,
            "must not be empty or invisible",
        ));
    }
    if value.chars().any(is_bidi_control) {
        return Err(ModelError::invalid_field(
            field,
            "contains bidirectional control characters",
        ));
    }
    if chars > max_chars {
        let reason = format!("is {chars} characters, at most {max_chars} allowed");
        return Err(ModelError::invalid_field(field, reason));
    }
    if value.chars().any(char::is_control) {
        return Err(ModelError::invalid_field(
            field,
            "contains control characters",
        ));
    }
    Ok(())
}

/// Zero-width and other format characters that render as nothing.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}')
}

/// Characters that reorder displayed text, a known way to make one string look like another.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests;
