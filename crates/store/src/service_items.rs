//! Service items: the services of the city's departments that accept an electronic license
//! instead of the paper one, each with the license types it accepts.
//!
//! The plan's pilot table (`data/service-items.csv`) is loaded through the API and edited the
//! same way; items are replicated through Raft like any data. Three things lean on them, and
//! apply keeps all three consistent with the registry on every replica:
//! - a verification must name a registered item that accepts the license type it asks about;
//! - a disclosure rule exists only for an item and a type it accepts: changing an item's types
//!   drops the rules of the types it no longer accepts, removing the item drops all of them;
//! - a verifier principal may name only registered items, and an item some principal names
//!   cannot be removed until the principal no longer does.
//!
//! [`check_service_item`] is pure and shared by the API (to refuse bad input before
//! proposing) and by apply (which decides again from the same inputs on every replica).

use licstore_model::TemplateRegistry;
use serde::{Deserialize, Serialize};

use crate::apply::Applier;
use crate::command::{RejectCode, Rejection};
use crate::keys::{self, CF_POLICIES};
use crate::{codec, StoreError};

/// Longest service-item name, in bytes.
pub const SERVICE_ITEM_LEN_MAX: usize = 256;

/// Longest department name, in bytes.
pub const DEPARTMENT_LEN_MAX: usize = 256;

/// A service item and the license types it accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceItem {
    /// Its name, as verifications, principals and disclosure rules name it.
    pub name: String,
    /// The department that serves it.
    pub department: String,
    /// The license types it accepts, as type codes, ascending and distinct; never empty.
    pub type_codes: Vec<String>,
}

impl ServiceItem {
    /// Whether it accepts licenses of `type_code` (a type code, not a template key).
    pub fn accepts(&self, type_code: &str) -> bool {
        self.type_codes.iter().any(|t| t == type_code)
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> Rejection {
    Rejection::new(RejectCode::InvalidArgument, field, reason)
}

fn precondition(field: &str, reason: impl Into<String>) -> Rejection {
    Rejection::new(RejectCode::FailedPrecondition, field, reason)
}

/// Checks a name of `field` (a service item's or a department's): trimmed, not empty, at most
/// `max_len` bytes, no control characters.
pub fn check_name(field: &str, name: &str, max_len: usize) -> Result<String, Rejection> {
    let name = name.trim();
    if name.is_empty() {
        return Err(invalid(field, "is empty"));
    }
    if name.len() > max_len || name.chars().any(char::is_control) {
        let reason = format!("must be at most {max_len} bytes without control characters");
        return Err(invalid(field, reason));
    }
    Ok(name.to_owned())
}

/// Checks a service item's name.
pub fn check_item_name(field: &str, name: &str) -> Result<String, Rejection> {
    check_name(field, name, SERVICE_ITEM_LEN_MAX)
}

/// Checks an item and puts it in canonical form: names trimmed, types as codes, ascending and
/// distinct.
pub fn check_service_item(
    templates: &TemplateRegistry,
    item: &ServiceItem,
) -> Result<ServiceItem, Rejection> {
    let name = check_item_name("name", &item.name)?;
    let department = check_name("department", &item.department, DEPARTMENT_LEN_MAX)?;
    if item.type_codes.is_empty() {
        return Err(invalid(
            "type_codes",
            "at least one license type is required",
        ));
    }
    if item.type_codes.len() > templates.len() {
        let reason = format!(
            "{} given; there are {} license types",
            item.type_codes.len(),
            templates.len()
        );
        return Err(invalid("type_codes", reason));
    }
    let mut type_codes = Vec::with_capacity(item.type_codes.len());
    for (i, code) in item.type_codes.iter().enumerate() {
        let template = templates
            .get(code.trim())
            .map_err(|e| invalid(&format!("type_codes[{i}]"), e.to_string()))?;
        type_codes.push(template.type_code.clone());
    }
    type_codes.sort();
    type_codes.dedup();
    Ok(ServiceItem {
        name,
        department,
        type_codes,
    })
}

/// Why a verification or a disclosure rule for `type_code` under the item `name` cannot be,
/// given the item as stored (`None`: not registered); `None` when it can.
pub fn refusal(item: Option<&ServiceItem>, name: &str, type_code: &str) -> Option<Rejection> {
    match item {
        None => Some(precondition(
            "service_item",
            format!("{name:?} is not a registered service item"),
        )),
        Some(item) if !item.accepts(type_code) => Some(precondition(
            "type_code",
            format!(
                "service item {name:?} does not accept license type {type_code}; it accepts {}",
                item.type_codes.join(", ")
            ),
        )),
        Some(_) => None,
    }
}

impl Applier<'_, '_> {
    /// Stores an item, replacing one of the same name, and drops the disclosure rules of the
    /// types it no longer accepts; answers with the item as stored.
    pub(crate) fn put_service_item(
        &mut self,
        item: &ServiceItem,
    ) -> Result<Result<ServiceItem, Rejection>, StoreError> {
        let item = match check_service_item(self.templates, item) {
            Ok(item) => item,
            Err(rejection) => return Ok(Err(rejection)),
        };
        self.drop_rules(&item.name, |code| !item.accepts(code))?;
        let key = keys::service_item_key(&item.name);
        self.txn
            .put(CF_POLICIES, &key, codec::encode("service item", &item)?)?;
        Ok(Ok(item))
    }

    /// Removes an item and its disclosure rules; answers with what was stored. Refused while
    /// a principal names the item, and NOT_FOUND for an item not registered.
    pub(crate) fn remove_service_item(
        &mut self,
        name: &str,
    ) -> Result<Result<ServiceItem, Rejection>, StoreError> {
        let name = match check_item_name("name", name) {
            Ok(name) => name,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let Some(stored) = self.service_item(&name)? else {
            let reason = format!("no service item {name:?}");
            return Ok(Err(Rejection::new(RejectCode::NotFound, "name", reason)));
        };
        if let Some(principal) = self.principal_naming(&name)? {
            let reason = format!(
                "principal {principal:?} verifies for it; take the item off the principal first"
            );
            return Ok(Err(precondition("name", reason)));
        }
        self.drop_rules(&name, |_| true)?;
        self.txn
            .delete(CF_POLICIES, &keys::service_item_key(&name))?;
        Ok(Ok(stored))
    }

    /// The item registered under `name`, as this batch sees it.
    pub(crate) fn service_item(&self, name: &str) -> Result<Option<ServiceItem>, StoreError> {
        match self.txn.get(CF_POLICIES, &keys::service_item_key(name))? {
            Some(bytes) => decode_service_item(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Deletes the disclosure rules of item `name` for every known type `drop` selects.
    fn drop_rules(&mut self, name: &str, drop: impl Fn(&str) -> bool) -> Result<(), StoreError> {
        let codes: Vec<String> = self
            .templates
            .iter()
            .map(|t| t.type_code.clone())
            .filter(|code| drop(code))
            .collect();
        for code in codes {
            let key = keys::disclosure_rule_key(name, &code);
            self.txn.delete(CF_POLICIES, &key)?;
        }
        Ok(())
    }

    /// The name of a principal that verifies for item `name`, if any.
    fn principal_naming(&self, name: &str) -> Result<Option<String>, StoreError> {
        let (from, to) = keys::principal_range();
        for key in self.txn.keys_below(CF_POLICIES, &to, usize::MAX)? {
            if key.as_slice() < from.as_slice() {
                continue;
            }
            let Some(bytes) = self.txn.get(CF_POLICIES, &key)? else {
                continue;
            };
            let principal = crate::principals::decode_principal(&bytes)?;
            if principal.service_items.iter().any(|i| i == name) {
                return Ok(Some(principal.name));
            }
        }
        Ok(None)
    }
}

/// Decodes a stored service item.
pub(crate) fn decode_service_item(bytes: &[u8]) -> Result<ServiceItem, StoreError> {
    codec::decode("service item", bytes)
}

#[cfg(test)]
mod tests;
