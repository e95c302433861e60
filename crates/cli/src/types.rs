//! License types as the command line names them: a 21-character type code, a template key
//! (`resident-id-card`) or the Chinese template name (`居民身份证`), all resolved against the
//! built-in templates of `licstore-model`.

use std::sync::OnceLock;

use licstore_model::{LicenseTemplate, TemplateRegistry};

/// The built-in templates, loaded once.
pub fn registry() -> &'static TemplateRegistry {
    static REGISTRY: OnceLock<TemplateRegistry> = OnceLock::new();
    REGISTRY.get_or_init(TemplateRegistry::builtin)
}

/// The template named by a type code, key or Chinese name.
pub fn find(name: &str) -> Option<&'static LicenseTemplate> {
    let name = name.trim();
    registry()
        .get(name)
        .ok()
        .or_else(|| registry().iter().find(|t| t.name == name))
}

/// The type code to send for a `--type` argument: the template's code when the name is known,
/// the argument unchanged otherwise (the server may know types this build does not).
pub fn resolve(name: &str) -> String {
    find(name).map_or_else(|| name.trim().to_owned(), |t| t.type_code.clone())
}

/// The Chinese template name for a type code, or the code itself.
pub fn display_name(type_code: &str) -> String {
    find(type_code).map_or_else(|| type_code.to_owned(), |t| t.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keys_and_codes_resolve_to_codes() {
        let cases = [
            ("resident-id-card", "居民身份证"),
            ("shanghai-residence-permit", "上海市居住证"),
            ("出生医学证明", "出生医学证明"),
            ("营业执照", "营业执照"),
        ];
        for (arg, name) in cases {
            let code = resolve(arg);
            assert_eq!(code.len(), 21, "{arg}");
            assert_eq!(display_name(&code), name, "{arg}");
            assert_eq!(resolve(&code), code);
        }
        assert_eq!(resolve("no-such-type"), "no-such-type");
    }
}
