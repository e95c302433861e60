//! Which fields of a license a service item is entitled to see when it verifies one.
//!
//! A verification answers with a verdict; the fields of the license it names are disclosed
//! only when a rule for (service item, license type) lists them, and by default none are.
//! Rules are replicated through Raft like any data, so every replica answers a verification
//! with the same fields. A rule names face fields of the type's template and issued fields
//! under their `@` names (`@holder.name`, `@valid_until`, see
//! [`licstore_model::CORE_FIELDS`]); setting a rule with no fields removes it.
//!
//! [`check_rule`] is pure and shared by the API (to refuse bad input before proposing) and by
//! apply (which decides again from the same inputs on every replica).

use licstore_model::{is_core_field, TemplateRegistry};
use serde::{Deserialize, Serialize};

use crate::apply::Applier;
use crate::command::{RejectCode, Rejection};
use crate::keys::{self, CF_POLICIES};
use crate::service_items;
use crate::{codec, StoreError};

/// Most fields one rule may disclose.
pub const RULE_FIELDS_MAX: usize = 64;

/// The fields one service item sees of one license type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisclosureRule {
    /// The service item, as verifications name it.
    pub service_item: String,
    /// The license type code.
    pub type_code: String,
    /// Field names, ascending and distinct; empty means the rule is removed.
    pub fields: Vec<String>,
}

fn invalid(field: &str, reason: impl Into<String>) -> Rejection {
    Rejection::new(RejectCode::InvalidArgument, field, reason)
}

/// Checks a rule and puts its fields in canonical order (ascending, duplicates dropped).
pub fn check_rule(
    templates: &TemplateRegistry,
    rule: &DisclosureRule,
) -> Result<DisclosureRule, Rejection> {
    let item = service_items::check_item_name("service_item", &rule.service_item)?;
    let template = templates
        .get(&rule.type_code)
        .map_err(|e| invalid("type_code", e.to_string()))?;
    if rule.fields.len() > RULE_FIELDS_MAX {
        let reason = format!("{} fields; at most {RULE_FIELDS_MAX}", rule.fields.len());
        return Err(invalid("fields", reason));
    }
    let mut fields = Vec::with_capacity(rule.fields.len());
    for (i, name) in rule.fields.iter().enumerate() {
        if !is_core_field(name) && template.field(name).is_none() {
            let shown: String = name.chars().take(64).collect();
            let reason = format!(
                "{shown:?} is neither a face field of {} nor an @ issued field",
                template.key
            );
            return Err(invalid(&format!("fields[{i}]"), reason));
        }
        fields.push(name.clone());
    }
    fields.sort();
    fields.dedup();
    Ok(DisclosureRule {
        service_item: item,
        type_code: template.type_code.clone(),
        fields,
    })
}

impl Applier<'_, '_> {
    /// Stores (or, with no fields, removes) a rule; answers with the rule as stored.
    pub(crate) fn set_disclosure(
        &mut self,
        rule: &DisclosureRule,
    ) -> Result<Result<DisclosureRule, Rejection>, StoreError> {
        let rule = match check_rule(self.templates, rule) {
            Ok(rule) => rule,
            Err(rejection) => return Ok(Err(rejection)),
        };
        // A rule is set only for a registered item and a type it accepts; removing one is
        // always allowed, so no rule outlives the means to remove it.
        let item = self.service_item(&rule.service_item)?;
        let refused = service_items::refusal(item.as_ref(), &rule.service_item, &rule.type_code);
        if let (Some(rejection), false) = (refused, rule.fields.is_empty()) {
            return Ok(Err(rejection));
        }
        let key = keys::disclosure_rule_key(&rule.service_item, &rule.type_code);
        if rule.fields.is_empty() {
            self.txn.delete(CF_POLICIES, &key)?;
        } else {
            self.txn.put(
                CF_POLICIES,
                &key,
                codec::encode("disclosure rule", &rule.fields)?,
            )?;
        }
        Ok(Ok(rule))
    }
}

/// Decodes a stored rule's fields.
pub(crate) fn decode_fields(bytes: &[u8]) -> Result<Vec<String>, StoreError> {
    codec::decode("disclosure rule", bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID_CARD: &str = "resident-id-card";

    fn rule(item: &str, type_code: &str, fields: &[&str]) -> DisclosureRule {
        DisclosureRule {
            service_item: item.into(),
            type_code: type_code.into(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    #[test]
    fn rules_are_checked_field_by_field() {
        let templates = TemplateRegistry::builtin();
        let face = templates.get(ID_CARD).unwrap().fields[0].name.clone();
        let long_item = "x".repeat(service_items::SERVICE_ITEM_LEN_MAX + 1);
        let many: Vec<&str> = vec!["@identifier"; RULE_FIELDS_MAX + 1];
        let cases: [(&str, DisclosureRule, Option<&str>); 8] = [
            (
                "face and core",
                rule("户口迁移", ID_CARD, &[&face, "@holder.name"]),
                None,
            ),
            ("no fields", rule("户口迁移", ID_CARD, &[]), None),
            (
                "empty item",
                rule(" ", ID_CARD, &["@identifier"]),
                Some("service_item"),
            ),
            (
                "long item",
                rule(&long_item, ID_CARD, &[]),
                Some("service_item"),
            ),
            (
                "control",
                rule("a\u{0}b", ID_CARD, &[]),
                Some("service_item"),
            ),
            (
                "unknown type",
                rule("户口迁移", "no-such-type", &[]),
                Some("type_code"),
            ),
            (
                "unknown field",
                rule("户口迁移", ID_CARD, &["@identifier", "@salary"]),
                Some("fields[1]"),
            ),
            ("too many", rule("户口迁移", ID_CARD, &many), Some("fields")),
        ];
        for (case, input, refused) in cases {
            match (check_rule(&templates, &input), refused) {
                (Ok(_), None) => {}
                (Err(r), Some(field)) => assert_eq!(r.field, field, "{case}"),
                (outcome, _) => panic!("{case}: {outcome:?}"),
            }
        }
    }

    #[test]
    fn fields_come_out_sorted_and_distinct_under_the_type_code() {
        let templates = TemplateRegistry::builtin();
        let input = rule(
            " 户口迁移 ",
            ID_CARD,
            &["@valid_until", "@holder.name", "@valid_until"],
        );
        let checked = check_rule(&templates, &input).unwrap();
        assert_eq!(checked.fields, ["@holder.name", "@valid_until"]);
        assert_eq!(checked.service_item, "户口迁移");
        assert_eq!(checked.type_code, templates.get(ID_CARD).unwrap().type_code);
    }
}
