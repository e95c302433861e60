//! License types as data: templates loaded from TOML.
//!
//! A [`LicenseTemplate`] describes one license type: its 21-character type code, a short key,
//! the Chinese name, which holder kind it is issued to, whether a holder may hold several valid
//! instances, a default validity period and the face fields (证照照面信息) with their rules.
//! The four pilot types ship in `templates/pilot.toml`, embedded at compile time.
//!
//! TOML layout (one `[[template]]` table per type, one `[[template.field]]` per face field):
//!
//! ```toml
//! [[template]]
//! type_code = "11100000000001011X001"   # authority USCC (valid check) + 3 digits
//! key = "resident-id-card"              # lowercase words joined by '-'
//! name = "居民身份证"
//! holder_kind = "citizen_id"            # or "uscc", or the codes "111" / "001"
//! multiple_per_holder = false
//! default_validity_years = 10           # omit for long-term licenses
//!
//! [[template.field]]
//! name = "sex"                          # lowercase snake_case
//! kind = "enum"                         # "text" | "date" | "integer" | "enum"
//! values = ["男", "女"]                  # only for kind = "enum"
//! required = true                       # default false
//! max_len = 2                           # characters; default per kind
//! pattern = "..."                       # optional regex, must match the whole value
//! ```
//!
//! Patterns are compiled when the TOML is loaded (a bad pattern fails the load) and cached by
//! pattern text, so [`LicenseTemplate::validate_face`] does not recompile them per license.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::date::Date;
use crate::error::ModelError;
use crate::holder::{uscc_check, HolderKind};
use crate::identifier::check_type_code;

const PILOT_TOML: &str = include_str!("../templates/pilot.toml");

/// Longest allowed `max_len` of a face field, in characters.
pub const FIELD_CHARS_MAX: usize = 8192;
const TEXT_CHARS_DEFAULT: usize = 256;
const DATE_CHARS: usize = 10;
const INTEGER_CHARS_DEFAULT: usize = 20;
const NAME_CHARS_MAX: usize = 64;
const VALIDITY_YEARS_MAX: u16 = 100;
const REGEX_BYTES_MAX: usize = 1 << 20;

/// One license type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseTemplate {
    /// 21 characters: the defining authority's USCC plus a 3-digit sequence.
    pub type_code: String,
    /// Short stable key, e.g. `resident-id-card`.
    pub key: String,
    /// Chinese name, e.g. `居民身份证`.
    pub name: String,
    /// The kind of holder the type is issued to.
    pub holder_kind: HolderKind,
    /// Whether one holder may hold several valid licenses of this type at once.
    pub multiple_per_holder: bool,
    /// Usual validity period; `None` means long-term.
    pub default_validity_years: Option<u16>,
    /// Face fields, in display order.
    pub fields: Vec<FieldSpec>,
}

/// One face field of a template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSpec {
    /// Field name (snake_case); errors call it `face.<name>`.
    pub name: String,
    /// What the value must be.
    pub kind: FieldKind,
    /// Whether the field must be present and non-blank.
    pub required: bool,
    /// Regex the whole value must match.
    pub pattern: Option<String>,
    /// Longest value, in characters (not bytes).
    pub max_len: usize,
}

/// The type of a face field's value. Values are always stored as strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Free text (newlines and tabs allowed, other control characters not).
    Text,
    /// A date, `YYYY-MM-DD` or `YYYYMMDD`.
    Date,
    /// A decimal integer that fits in an `i64`, optional leading `-`.
    Integer,
    /// One of the listed values.
    Enum(Vec<String>),
}

impl FieldKind {
    fn as_str(&self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Date => "date",
            FieldKind::Integer => "integer",
            FieldKind::Enum(_) => "enum",
        }
    }
}

/// All known license types, looked up by type code or key.
#[derive(Clone, Debug, Default)]
pub struct TemplateRegistry {
    templates: Vec<LicenseTemplate>,
    /// Type code and key → index into `templates`. Codes and keys never collide.
    index: BTreeMap<String, usize>,
}

impl TemplateRegistry {
    /// The four pilot types from the embedded `templates/pilot.toml`.
    pub fn builtin() -> TemplateRegistry {
        // The embedded file is constant and loaded by the tests, so this cannot fail at run
        // time; an empty registry is the fallback rather than a panic.
        TemplateRegistry::from_toml(PILOT_TOML).unwrap_or_default()
    }

    /// Loads and validates templates from TOML text (see the module doc for the layout).
    pub fn from_toml(text: &str) -> Result<TemplateRegistry, ModelError> {
        let file: RawFile = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|span| format!(" (at byte {})", span.start));
            let reason = format!("{}{}", e.message(), at.unwrap_or_default());
            ModelError::invalid_field("templates", reason)
        })?;
        let mut registry = TemplateRegistry::default();
        for raw in file.template {
            registry.insert(raw.into_template()?)?;
        }
        Ok(registry)
    }

    /// The template with this type code or key.
    pub fn get(&self, type_code_or_key: &str) -> Result<&LicenseTemplate, ModelError> {
        self.index
            .get(type_code_or_key)
            .map(|&i| &self.templates[i])
            .ok_or_else(|| ModelError::UnknownLicenseType {
                type_code: type_code_or_key.chars().take(64).collect(),
            })
    }

    /// Every template, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &LicenseTemplate> {
        self.templates.iter()
    }

    /// Number of templates.
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    /// True when there are no templates.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    fn insert(&mut self, template: LicenseTemplate) -> Result<(), ModelError> {
        for name in [&template.type_code, &template.key] {
            if self.index.contains_key(name.as_str()) {
                let field = format!("template.{}", template.key);
                return Err(ModelError::invalid_field(
                    field,
                    format!("{name} is defined twice"),
                ));
            }
        }
        let position = self.templates.len();
        self.index.insert(template.type_code.clone(), position);
        self.index.insert(template.key.clone(), position);
        self.templates.push(template);
        Ok(())
    }
}

impl LicenseTemplate {
    /// Checks face data against the field specs: no unknown fields, required fields present and
    /// non-blank, values within `max_len` characters, of the right kind and matching the
    /// pattern. Errors name the field as `face.<name>`.
    pub fn validate_face(&self, face: &BTreeMap<String, String>) -> Result<(), ModelError> {
        if let Some(unknown) = face.keys().find(|k| self.field(k).is_none()) {
            let shown: String = unknown.chars().take(64).collect();
            let reason = format!("not a field of {}", self.key);
            return Err(ModelError::invalid_field(format!("face.{shown}"), reason));
        }
        for spec in &self.fields {
            spec.validate_value(face.get(&spec.name).map(String::as_str))?;
        }
        Ok(())
    }

    /// The spec of a named face field.
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }
}

impl FieldSpec {
    /// Checks one value; `None` or a blank value counts as absent.
    pub fn validate_value(&self, value: Option<&str>) -> Result<(), ModelError> {
        let field = format!("face.{}", self.name);
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
            return match self.required {
                true => Err(ModelError::invalid_field(field, "is required")),
                false => Ok(()),
            };
        };
        let chars = value.chars().count();
        if chars > self.max_len {
            let reason = format!("is {chars} characters, at most {} allowed", self.max_len);
            return Err(ModelError::invalid_field(field, reason));
        }
        if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(ModelError::invalid_field(
                field,
                "contains control characters",
            ));
        }
        self.check_kind(value).map_err(|e| e.with_field(&field))?;
        self.check_pattern(value).map_err(|e| e.with_field(&field))
    }

    fn check_kind(&self, value: &str) -> Result<(), ModelError> {
        match &self.kind {
            FieldKind::Text => Ok(()),
            FieldKind::Date => Date::parse(value).map(|_| ()),
            FieldKind::Integer => parse_integer(value).map(|_| ()),
            FieldKind::Enum(values) if values.iter().any(|v| v == value) => Ok(()),
            FieldKind::Enum(values) => {
                let reason = format!("must be one of {}", values.join(", "));
                Err(ModelError::invalid_field("", reason))
            }
        }
    }

    fn check_pattern(&self, value: &str) -> Result<(), ModelError> {
        let Some(pattern) = &self.pattern else {
            return Ok(());
        };
        let regex = compiled_pattern(pattern).map_err(|_| {
            ModelError::invalid_field("", "the template's pattern does not compile")
        })?;
        if regex.is_match(value) {
            Ok(())
        } else {
            Err(ModelError::invalid_field(
                "",
                format!("does not match pattern {pattern}"),
            ))
        }
    }
}

fn parse_integer(value: &str) -> Result<i64, ModelError> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    let well_formed = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    match value.parse::<i64>() {
        Ok(number) if well_formed => Ok(number),
        _ => Err(ModelError::invalid_field(
            "",
            "must be a decimal integer within i64",
        )),
    }
}

/// The anchored regex for a pattern, compiled once per distinct pattern text. Shared through an
/// `Arc`: a cloned `Regex` starts with no match cache and would build one on every use.
fn compiled_pattern(pattern: &str) -> Result<Arc<Regex>, regex::Error> {
    static CACHE: OnceLock<RwLock<HashMap<String, Arc<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(RwLock::default);
    let cached = cache
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(pattern)
        .cloned();
    if let Some(regex) = cached {
        return Ok(regex);
    }
    let regex = Arc::new(
        RegexBuilder::new(&format!("^(?:{pattern})$"))
            .size_limit(REGEX_BYTES_MAX)
            .build()?,
    );
    let mut writer = cache.write().unwrap_or_else(PoisonError::into_inner);
    writer.insert(pattern.to_owned(), regex.clone());
    Ok(regex)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    template: Vec<RawTemplate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    type_code: String,
    key: String,
    name: String,
    holder_kind: String,
    multiple_per_holder: bool,
    default_validity_years: Option<u16>,
    #[serde(default)]
    field: Vec<RawField>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    kind: String,
    #[serde(default)]
    required: bool,
    pattern: Option<String>,
    max_len: Option<usize>,
    #[serde(default)]
    values: Vec<String>,
}

impl RawTemplate {
    fn into_template(self) -> Result<LicenseTemplate, ModelError> {
        let field_prefix = format!("template.{}", self.key);
        check_key(&self.key)?;
        check_template_type_code(&self.type_code, &field_prefix)?;
        check_display_name(&self.name, &format!("{field_prefix}.name"))?;
        let holder_kind = HolderKind::from_str(&self.holder_kind)
            .map_err(|e| e.with_field(format!("{field_prefix}.holder_kind")))?;
        check_validity_years(self.default_validity_years, &field_prefix)?;
        let fields = self.field.into_iter().map(|f| f.into_spec(&field_prefix));
        let fields = fields.collect::<Result<Vec<FieldSpec>, ModelError>>()?;
        check_unique_field_names(&fields, &field_prefix)?;
        Ok(LicenseTemplate {
            type_code: self.type_code,
            key: self.key,
            name: self.name,
            holder_kind,
            multiple_per_holder: self.multiple_per_holder,
            default_validity_years: self.default_validity_years,
            fields,
        })
    }
}

impl RawField {
    fn into_spec(self, template_field: &str) -> Result<FieldSpec, ModelError> {
        let field = format!("{template_field}.field.{}", self.name);
        check_field_name(&self.name, &field)?;
        let kind = parse_kind(&self.kind, self.values, &field)?;
        let max_len = self.max_len.unwrap_or_else(|| default_max_len(&kind));
        check_max_len(&kind, max_len, &field)?;
        if let Some(pattern) = &self.pattern {
            compiled_pattern(pattern)
                .map_err(|e| ModelError::invalid_field(&field, format!("bad pattern: {e}")))?;
        }
        Ok(FieldSpec {
            name: self.name,
            kind,
            required: self.required,
            pattern: self.pattern,
            max_len,
        })
    }
}

fn parse_kind(kind: &str, values: Vec<String>, field: &str) -> Result<FieldKind, ModelError> {
    let kind = match kind {
        "text" => FieldKind::Text,
        "date" => FieldKind::Date,
        "integer" => FieldKind::Integer,
        "enum" => return enum_kind(values, field),
        other => {
            let reason = format!("unknown kind {other:?}; expected text, date, integer or enum");
            return Err(ModelError::invalid_field(field, reason));
        }
    };
    if values.is_empty() {
        Ok(kind)
    } else {
        let reason = format!(
            "values are only allowed for enum fields, not {}",
            kind.as_str()
        );
        Err(ModelError::invalid_field(field, reason))
    }
}

fn enum_kind(values: Vec<String>, field: &str) -> Result<FieldKind, ModelError> {
    if values.is_empty() || values.iter().any(|v| v.trim().is_empty()) {
        let reason = "enum fields need a non-empty list of non-blank values";
        return Err(ModelError::invalid_field(field, reason));
    }
    let mut sorted: Vec<&String> = values.iter().collect();
    sorted.sort();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(ModelError::invalid_field(field, "enum values repeat"));
    }
    Ok(FieldKind::Enum(values))
}

fn default_max_len(kind: &FieldKind) -> usize {
    match kind {
        FieldKind::Text => TEXT_CHARS_DEFAULT,
        FieldKind::Date => DATE_CHARS,
        FieldKind::Integer => INTEGER_CHARS_DEFAULT,
        FieldKind::Enum(values) => values.iter().map(|v| v.chars().count()).max().unwrap_or(1),
    }
}

fn check_max_len(kind: &FieldKind, max_len: usize, field: &str) -> Result<(), ModelError> {
    if !(1..=FIELD_CHARS_MAX).contains(&max_len) {
        let reason = format!("max_len {max_len} is outside 1..={FIELD_CHARS_MAX}");
        return Err(ModelError::invalid_field(field, reason));
    }
    let too_long = match kind {
        FieldKind::Enum(values) => values.iter().any(|v| v.chars().count() > max_len),
        FieldKind::Date => max_len < DATE_CHARS,
        _ => false,
    };
    if too_long {
        return Err(ModelError::invalid_field(
            field,
            "max_len is shorter than valid values",
        ));
    }
    Ok(())
}

fn check_template_type_code(code: &str, field_prefix: &str) -> Result<(), ModelError> {
    let field = format!("{field_prefix}.type_code");
    check_type_code(code, &field)?;
    let expected = uscc_check(&code.as_bytes()[..17]);
    if code.as_bytes()[17] != expected as u8 {
        let reason = format!("the authority code's check character should be {expected}");
        return Err(ModelError::invalid_field(field, reason));
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), ModelError> {
    let words_ok = key.split('-').all(|word| {
        !word.is_empty()
            && word
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if words_ok && key.len() <= NAME_CHARS_MAX && key.starts_with(|c: char| c.is_ascii_lowercase())
    {
        return Ok(());
    }
    let reason = "key must be lowercase words of a-z0-9 joined by '-', starting with a letter";
    Err(ModelError::invalid_field(format!("template.{key}"), reason))
}

fn check_field_name(name: &str, field: &str) -> Result<(), ModelError> {
    let chars_ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if chars_ok
        && name.len() <= NAME_CHARS_MAX
        && name.starts_with(|c: char| c.is_ascii_lowercase())
    {
        return Ok(());
    }
    let reason = "field names are snake_case: a-z, 0-9 and '_', starting with a letter";
    Err(ModelError::invalid_field(field, reason))
}

fn check_display_name(name: &str, field: &str) -> Result<(), ModelError> {
    let count = name.chars().count();
    if name.trim().is_empty() || count > NAME_CHARS_MAX {
        let reason = format!("name must be 1..={NAME_CHARS_MAX} characters, got {count}");
        return Err(ModelError::invalid_field(field, reason));
    }
    Ok(())
}

fn check_validity_years(years: Option<u16>, field_prefix: &str) -> Result<(), ModelError> {
    match years {
        Some(y) if !(1..=VALIDITY_YEARS_MAX).contains(&y) => Err(ModelError::invalid_field(
            format!("{field_prefix}.default_validity_years"),
            format!("{y} is outside 1..={VALIDITY_YEARS_MAX}; omit it for long-term licenses"),
        )),
        _ => Ok(()),
    }
}

fn check_unique_field_names(fields: &[FieldSpec], field_prefix: &str) -> Result<(), ModelError> {
    let mut names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    match names.windows(2).find(|w| w[0] == w[1]) {
        Some(pair) => {
            let field = format!("{field_prefix}.field.{}", pair[0]);
            Err(ModelError::invalid_field(field, "defined twice"))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
