//! Principals: the callers the store knows, each with its roles and what they cover.
//!
//! A caller proves who it is with its client certificate; the server maps the certificate's
//! name to a principal held here and lets it call only what its roles allow. An issuer is
//! bound to its issuer code and the license types it is registered for; a verifier to the
//! service items it verifies for. Principals are replicated through Raft like any data, so
//! every node decides a call the same way once it has applied the same log.
//!
//! [`check_principal`] is pure and shared by the API (to refuse bad input before proposing) and
//! by apply (which decides again from the same inputs on every replica).

use licstore_model::TemplateRegistry;
use serde::{Deserialize, Serialize};

use crate::apply::Applier;
use crate::command::{RejectCode, Rejection};
use crate::keys::{self, CF_POLICIES};
use crate::service_items::check_item_name;
use crate::{codec, StoreError};

/// Longest principal name, in bytes.
pub const PRINCIPAL_NAME_LEN_MAX: usize = 256;

/// Longest issuer code, in bytes (a USCC has 18 characters, a region code 6).
pub const ISSUER_CODE_LEN_MAX: usize = 32;

/// Most license types or service items one principal may be registered for.
pub const PRINCIPAL_SCOPE_MAX: usize = 256;

/// An issuer code or license type list of just this covers every code or type: for the city's
/// data-sharing platform that migrates every department's stock, never for a department.
pub const ANY: &str = "*";

/// What a principal may do; the server's rule table maps each RPC to the roles allowed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// A department that issues licenses: writes those of its issuer codes and license types,
    /// reads licenses, manages the seal keys of its own issuer codes.
    Issuer,
    /// A department that verifies licenses for the service items it is registered for.
    Verifier,
    /// Reads the principals, the service items and the disclosure rules.
    Auditor,
    /// Manages members, principals, registrations, disclosure rules and trust lists.
    Admin,
}

impl Role {
    /// Every role, in order.
    pub const ALL: [Role; 4] = [Role::Issuer, Role::Verifier, Role::Auditor, Role::Admin];

    /// The lower-case name used on the wire and in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Issuer => "issuer",
            Role::Verifier => "verifier",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    /// The role a name stands for.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// A caller known to the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The name its client certificate carries (see the server's `access` module).
    pub name: String,
    /// Its roles, ascending and distinct; never empty.
    pub roles: Vec<Role>,
    /// For an issuer: the issuer codes (`issuer.code`) of the licenses it may write, ascending
    /// and distinct (a department may answer for several offices); [`ANY`] alone for all.
    pub issuer_codes: Vec<String>,
    /// For an issuer: the license types it may write, ascending and distinct; [`ANY`] alone
    /// for all.
    pub type_codes: Vec<String>,
    /// For a verifier: the service items it verifies for, ascending and distinct.
    pub service_items: Vec<String>,
}

impl Principal {
    /// Whether it holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether, as an issuer, it may write licenses of `type_code`.
    pub fn covers_type(&self, type_code: &str) -> bool {
        self.type_codes.iter().any(|t| t == type_code || t == ANY)
    }

    /// Whether, as an issuer, it may write licenses issued under `issuer_code`.
    pub fn covers_issuer(&self, issuer_code: &str) -> bool {
        self.issuer_codes
            .iter()
            .any(|c| c == issuer_code || c == ANY)
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> Rejection {
    Rejection::new(RejectCode::InvalidArgument, field, reason)
}

/// Checks a principal's name: what a certificate could carry, without control characters.
pub fn check_principal_name(name: &str) -> Result<String, Rejection> {
    let name = name.trim();
    if name.is_empty() {
        return Err(invalid("name", "is empty"));
    }
    if name.len() > PRINCIPAL_NAME_LEN_MAX || name.chars().any(char::is_control) {
        let reason =
            format!("must be at most {PRINCIPAL_NAME_LEN_MAX} bytes without control characters");
        return Err(invalid("name", reason));
    }
    Ok(name.to_owned())
}

/// Checks a principal and puts its lists in canonical order (ascending, duplicates dropped).
/// Issuer codes and license types belong to issuers and service items to verifiers: each is
/// required with its role and refused without it, so a record never claims a scope no rule
/// reads.
pub fn check_principal(
    templates: &TemplateRegistry,
    principal: &Principal,
) -> Result<Principal, Rejection> {
    let name = check_principal_name(&principal.name)?;
    let mut roles = principal.roles.clone();
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        return Err(invalid("roles", "at least one role is required"));
    }
    let issuer = roles.contains(&Role::Issuer);
    let issuer_codes = check_issuer_codes(issuer, &principal.issuer_codes)?;
    let type_codes = check_type_codes(templates, issuer, &principal.type_codes)?;
    let verifier = roles.contains(&Role::Verifier);
    let service_items = check_service_items(verifier, &principal.service_items)?;
    Ok(Principal {
        name,
        roles,
        issuer_codes,
        type_codes,
        service_items,
    })
}

fn check_issuer_codes(issuer: bool, given: &[String]) -> Result<Vec<String>, Rejection> {
    scope_size("issuer_codes", issuer, "the issuer role", given)?;
    if let Some(any) = only_any("issuer_codes", given)? {
        return Ok(any);
    }
    let mut codes = Vec::with_capacity(given.len());
    for (i, code) in given.iter().enumerate() {
        let code = code.trim();
        let alphanumeric = code.chars().all(|c| c.is_ascii_alphanumeric());
        if code.is_empty() || code.len() > ISSUER_CODE_LEN_MAX || !alphanumeric {
            let reason = format!("must be 1 to {ISSUER_CODE_LEN_MAX} ASCII letters or digits");
            return Err(invalid(&format!("issuer_codes[{i}]"), reason));
        }
        codes.push(code.to_owned());
    }
    codes.sort();
    codes.dedup();
    Ok(codes)
}

fn check_type_codes(
    templates: &TemplateRegistry,
    issuer: bool,
    given: &[String],
) -> Result<Vec<String>, Rejection> {
    scope_size("type_codes", issuer, "the issuer role", given)?;
    if let Some(any) = only_any("type_codes", given)? {
        return Ok(any);
    }
    let mut codes = Vec::with_capacity(given.len());
    for (i, code) in given.iter().enumerate() {
        let template = templates
            .get(code.trim())
            .map_err(|e| invalid(&format!("type_codes[{i}]"), e.to_string()))?;
        codes.push(template.type_code.clone());
    }
    codes.sort();
    codes.dedup();
    Ok(codes)
}

fn check_service_items(verifier: bool, given: &[String]) -> Result<Vec<String>, Rejection> {
    scope_size("service_items", verifier, "the verifier role", given)?;
    let mut items = Vec::with_capacity(given.len());
    for (i, item) in given.iter().enumerate() {
        items.push(check_item_name(&format!("service_items[{i}]"), item)?);
    }
    items.sort();
    items.dedup();
    Ok(items)
}

/// `[ANY]` when the list is just [`ANY`]; refuses [`ANY`] beside other entries, which would
/// read as a narrower scope than it grants.
fn only_any(field: &str, given: &[String]) -> Result<Option<Vec<String>>, Rejection> {
    let is_any = |s: &String| s.trim() == ANY;
    if !given.iter().any(is_any) {
        return Ok(None);
    }
    if given.iter().all(is_any) {
        return Ok(Some(vec![ANY.to_owned()]));
    }
    Err(invalid(
        field,
        format!("{ANY:?} covers everything and stands alone"),
    ))
}

/// A scope list is required with its role, refused without it, and bounded.
fn scope_size(field: &str, with_role: bool, role: &str, given: &[String]) -> Result<(), Rejection> {
    match (with_role, given.is_empty()) {
        (true, true) => Err(invalid(
            field,
            format!("at least one is required for {role}"),
        )),
        (false, false) => Err(invalid(field, format!("only for {role}"))),
        _ if given.len() > PRINCIPAL_SCOPE_MAX => {
            let reason = format!("{} given; at most {PRINCIPAL_SCOPE_MAX}", given.len());
            Err(invalid(field, reason))
        }
        _ => Ok(()),
    }
}

impl Applier<'_, '_> {
    /// Stores a principal, replacing one of the same name; answers with it as stored.
    pub(crate) fn put_principal(
        &mut self,
        principal: &Principal,
    ) -> Result<Result<Principal, Rejection>, StoreError> {
        let principal = match check_principal(self.templates, principal) {
            Ok(p) => p,
            Err(rejection) => return Ok(Err(rejection)),
        };
        for (i, item) in principal.service_items.iter().enumerate() {
            if self.service_item(item)?.is_none() {
                let reason = format!("{item:?} is not a registered service item");
                let field = format!("service_items[{i}]");
                return Ok(Err(Rejection::new(
                    RejectCode::FailedPrecondition,
                    &field,
                    reason,
                )));
            }
        }
        let key = keys::principal_key(&principal.name);
        self.txn
            .put(CF_POLICIES, &key, codec::encode("principal", &principal)?)?;
        Ok(Ok(principal))
    }

    /// Removes a principal; answers with what was stored, or NOT_FOUND.
    pub(crate) fn remove_principal(
        &mut self,
        name: &str,
    ) -> Result<Result<Principal, Rejection>, StoreError> {
        let name = match check_principal_name(name) {
            Ok(name) => name,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let key = keys::principal_key(&name);
        let Some(bytes) = self.txn.get(CF_POLICIES, &key)? else {
            let reason = format!("no principal {name:?}");
            return Ok(Err(Rejection::new(RejectCode::NotFound, "name", reason)));
        };
        let stored = decode_principal(&bytes)?;
        self.txn.delete(CF_POLICIES, &key)?;
        Ok(Ok(stored))
    }
}

/// Decodes a stored principal.
pub(crate) fn decode_principal(bytes: &[u8]) -> Result<Principal, StoreError> {
    codec::decode("principal", bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID_CARD: &str = "resident-id-card";
    const OFFICE: &str = "11310115MB2F12345X";

    fn principal(roles: &[Role], codes: &[&str], types: &[&str], items: &[&str]) -> Principal {
        let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        Principal {
            name: "pudong-police".into(),
            roles: roles.to_vec(),
            issuer_codes: owned(codes),
            type_codes: owned(types),
            service_items: owned(items),
        }
    }

    #[test]
    fn principals_are_checked_field_by_field() {
        use Role::{Admin, Auditor, Issuer, Verifier};
        let templates = TemplateRegistry::builtin();
        let mut unnamed = principal(&[Admin], &[], &[], &[]);
        unnamed.name = " ".into();
        let mut control = principal(&[Admin], &[], &[], &[]);
        control.name = "a\nb".into();
        let many: Vec<&str> = vec![OFFICE; PRINCIPAL_SCOPE_MAX + 1];
        let cases: [(&str, Principal, Option<&str>); 16] = [
            ("any", principal(&[Issuer], &[ANY], &[ANY, ANY], &[]), None),
            (
                "any and one",
                principal(&[Issuer], &[ANY, OFFICE], &[ID_CARD], &[]),
                Some("issuer_codes"),
            ),
            ("admin", principal(&[Admin, Auditor], &[], &[], &[]), None),
            (
                "issuer",
                principal(&[Issuer], &[OFFICE], &[ID_CARD], &[]),
                None,
            ),
            (
                "verifier",
                principal(&[Verifier], &[], &[], &["户口迁移"]),
                None,
            ),
            ("no name", unnamed, Some("name")),
            ("control", control, Some("name")),
            ("no role", principal(&[], &[], &[], &[]), Some("roles")),
            (
                "issuer, no code",
                principal(&[Issuer], &[], &[ID_CARD], &[]),
                Some("issuer_codes"),
            ),
            (
                "issuer, no type",
                principal(&[Issuer], &[OFFICE], &[], &[]),
                Some("type_codes"),
            ),
            (
                "unknown type",
                principal(&[Issuer], &[OFFICE], &[ID_CARD, "x"], &[]),
                Some("type_codes[1]"),
            ),
            (
                "bad code",
                principal(&[Issuer], &["a-b"], &[ID_CARD], &[]),
                Some("issuer_codes[0]"),
            ),
            (
                "code, no issuer",
                principal(&[Admin], &[OFFICE], &[], &[]),
                Some("issuer_codes"),
            ),
            (
                "items, no verifier",
                principal(&[Admin], &[], &[], &["x"]),
                Some("service_items"),
            ),
            (
                "verifier, no item",
                principal(&[Verifier], &[], &[], &[]),
                Some("service_items"),
            ),
            (
                "too many",
                principal(&[Issuer], &many, &[ID_CARD], &[]),
                Some("issuer_codes"),
            ),
        ];
        for (case, input, refused) in cases {
            match (check_principal(&templates, &input), refused) {
                (Ok(_), None) => {}
                (Err(r), Some(field)) => assert_eq!(r.field, field, "{case}: {r:?}"),
                (outcome, _) => panic!("{case}: {outcome:?}"),
            }
        }
    }

    #[test]
    fn lists_are_put_in_order_and_types_named_by_code() {
        let templates = TemplateRegistry::builtin();
        let code = templates.get(ID_CARD).unwrap().type_code.clone();
        let given = principal(
            &[Role::Verifier, Role::Issuer, Role::Verifier],
            &["B1", " A1", "B1"],
            &[ID_CARD, &code],
            &["z", "a", "z"],
        );
        let checked = check_principal(&templates, &given).expect("valid");
        assert_eq!(checked.roles, [Role::Issuer, Role::Verifier]);
        assert_eq!(checked.issuer_codes, ["A1", "B1"]);
        assert_eq!(checked.type_codes, [code]);
        assert_eq!(checked.service_items, ["a", "z"]);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
