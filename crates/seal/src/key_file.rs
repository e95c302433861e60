//! A small text format for one secret key, meant for a file readable only by its owner.
//!
//! ```text
//! -----BEGIN LICSTORE SECRET KEY-----
//! suite: sm2-sm3
//! key_id: 3f6c...               (32 lowercase hex digits)
//! dist_id: 1234567812345678     (sm2-sm3 only)
//! secret: 9d61...               (64 lowercase hex digits)
//! -----END LICSTORE SECRET KEY-----
//! ```
//!
//! The lines come in exactly this order, each `name: value` with one space after the colon.
//! Blank lines and lines starting with `#` are ignored anywhere, so an operator may annotate a
//! file. The key id is recomputed from the secret on reading: a damaged secret, ID or key id is
//! reported instead of silently loading another key. Every error names the one-based line and
//! the field.

use crate::codec::{hex_decode, hex_encode};
use crate::error::SealError;
use crate::key_id::KeyId;
use crate::suite::{SecretKey, Suite};

/// First line of a key file.
pub const KEY_FILE_BEGIN: &str = "-----BEGIN LICSTORE SECRET KEY-----";

/// Last line of a key file.
pub const KEY_FILE_END: &str = "-----END LICSTORE SECRET KEY-----";

/// The key file text for `secret_key`, ending in a newline.
pub fn encode_key_file(secret_key: &SecretKey) -> String {
    let public = secret_key.public_key();
    let mut lines = vec![
        KEY_FILE_BEGIN.to_owned(),
        format!("suite: {}", secret_key.suite()),
        format!("key_id: {}", secret_key.key_id()),
    ];
    if let Some(dist_id) = public.dist_id() {
        lines.push(format!("dist_id: {dist_id}"));
    }
    lines.push(format!(
        "secret: {}",
        hex_encode(&secret_key.secret_bytes())
    ));
    lines.push(KEY_FILE_END.to_owned());
    lines.join("\n") + "\n"
}

/// Parses a key file written by [`encode_key_file`].
pub fn parse_key_file(text: &str) -> Result<SecretKey, SealError> {
    let mut lines = Lines::new(text);
    lines.expect_exact("begin", KEY_FILE_BEGIN)?;
    let (suite_line, suite_name) = lines.field("suite")?;
    let suite = Suite::from_name(suite_name)
        .ok_or_else(|| key_file_error(suite_line, "suite", "is not ed25519 or sm2-sm3"))?;
    let (id_line, id_text) = lines.field("key_id")?;
    let key_id: KeyId = id_text
        .parse()
        .map_err(|e: SealError| key_file_error(id_line, "key_id", &reason_of(e)))?;
    let dist_id = match suite {
        Suite::Ed25519 => None,
        Suite::Sm2Sm3 => Some(lines.field("dist_id")?),
    };
    let (secret_line, secret_hex) = lines.field("secret")?;
    let secret = hex_decode::<32>(secret_hex)
        .map_err(|reason| key_file_error(secret_line, "secret", &reason))?;
    let key = match dist_id {
        None => SecretKey::ed25519_from_seed(&secret),
        Some(dist_id) => sm2_key(&secret, secret_line, dist_id)?,
    };
    lines.expect_exact("end", KEY_FILE_END)?;
    lines.expect_no_more()?;
    if key.key_id() != key_id {
        let reason = format!(
            "does not match the secret and id, which give {}",
            key.key_id()
        );
        return Err(key_file_error(id_line, "key_id", &reason));
    }
    Ok(key)
}

/// An SM2 key, with a refusal blamed on the `dist_id` or the `secret` line as fits.
fn sm2_key(
    secret: &[u8; 32],
    secret_line: usize,
    (id_line, dist_id): (usize, &str),
) -> Result<SecretKey, SealError> {
    SecretKey::sm2_from_seed(secret, dist_id).map_err(|error| {
        let (line, field) = if error.field().ends_with("dist_id") {
            (id_line, "dist_id")
        } else {
            (secret_line, "secret")
        };
        key_file_error(line, field, &reason_of(error))
    })
}

fn key_file_error(line: usize, field: &str, reason: &str) -> SealError {
    SealError::KeyFile {
        line,
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The reason text of an `InvalidField` error, or the whole message otherwise.
fn reason_of(error: SealError) -> String {
    match error {
        SealError::InvalidField { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// The meaningful lines of a key file with their one-based numbers.
struct Lines<'a> {
    lines: Vec<(usize, &'a str)>,
    next: usize,
    total: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Lines<'a> {
        let all: Vec<&str> = text.lines().collect();
        let lines = all
            .iter()
            .enumerate()
            .map(|(index, line)| (index + 1, line.trim_end()))
            .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
            .collect();
        Lines {
            lines,
            next: 0,
            total: all.len(),
        }
    }

    fn next_line(&mut self, field: &str) -> Result<(usize, &'a str), SealError> {
        let line = self.lines.get(self.next).copied();
        self.next += 1;
        line.ok_or_else(|| key_file_error(self.total + 1, field, "is missing"))
    }

    fn expect_exact(&mut self, field: &str, expected: &str) -> Result<(), SealError> {
        let (number, line) = self.next_line(field)?;
        if line != expected {
            return Err(key_file_error(
                number,
                field,
                &format!("expected {expected:?}"),
            ));
        }
        Ok(())
    }

    /// The value of a `name: value` line.
    fn field(&mut self, name: &str) -> Result<(usize, &'a str), SealError> {
        let (number, line) = self.next_line(name)?;
        let value = line
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(": "))
            .ok_or_else(|| key_file_error(number, name, &format!("expected \"{name}: \"")))?;
        Ok((number, value))
    }

    fn expect_no_more(&mut self) -> Result<(), SealError> {
        match self.lines.get(self.next) {
            Some((number, _)) => Err(key_file_error(*number, "end", "text after the end line")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> [SecretKey; 3] {
        [
            SecretKey::from_seed(Suite::Ed25519, &[51; 32]).unwrap(),
            SecretKey::from_seed(Suite::Sm2Sm3, &[52; 32]).unwrap(),
            SecretKey::sm2_from_seed(&[53; 32], "seal@31000000").unwrap(),
        ]
    }

    #[test]
    fn key_files_round_trip() {
        for key in keys() {
            let text = encode_key_file(&key);
            let parsed = parse_key_file(&text).unwrap();
            assert_eq!(parsed.public_key(), key.public_key());
            assert_eq!(parsed.secret_bytes(), key.secret_bytes());
            let annotated = format!("# issuing key\n\n{}\n", text.replace('\n', "\r\n"));
            assert_eq!(parse_key_file(&annotated).unwrap().key_id(), key.key_id());
        }
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let text = encode_key_file(&keys()[2]);
        let lines: Vec<&str> = text.lines().collect();
        let replace = |index: usize, with: &str| {
            let mut edited = lines.clone();
            edited[index] = with;
            edited.join("\n")
        };
        let flipped_secret = {
            let mut secret = lines[4].to_owned();
            let last = if secret.ends_with('0') { "1" } else { "0" };
            secret.replace_range(secret.len() - 1.., last);
            secret
        };
        let cases = [
            (replace(0, "-----BEGIN PRIVATE KEY-----"), 1, "begin"),
            (replace(1, "suite: rsa"), 2, "suite"),
            (replace(1, "suite:sm2-sm3"), 2, "suite"),
            (replace(2, "key_id: 00"), 3, "key_id"),
            (replace(3, "dist_id: "), 4, "dist_id"),
            (replace(3, "dist_id: other-id"), 3, "key_id"),
            (replace(4, "secret: zz"), 5, "secret"),
            (replace(4, &flipped_secret), 3, "key_id"),
            (
                replace(4, &format!("secret: {}", "f".repeat(64))),
                5,
                "secret",
            ),
            (replace(5, "-----END-----"), 6, "end"),
            (lines[..5].join("\n"), 6, "end"),
            (format!("{text}extra\n"), 7, "end"),
            (String::new(), 1, "begin"),
        ];
        for (text, line, field) in cases {
            match parse_key_file(&text) {
                Err(SealError::KeyFile {
                    line: l,
                    field: f,
                    reason,
                }) => {
                    assert_eq!((l, f.as_str()), (line, field), "{reason}");
                }
                other => panic!("expected a key file error at {line} {field}, got {other:?}"),
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            let _ = parse_key_file(&text);
        }

        #[test]
        fn edited_key_files_never_panic(index in 0usize..400, byte in 0x20u8..0x7f) {
            let mut text = encode_key_file(&keys()[1]).into_bytes();
            let index = index % text.len();
            text[index] = byte;
            let text = String::from_utf8(text).unwrap();
            if let Ok(key) = parse_key_file(&text) {
                proptest::prop_assert_eq!(key.key_id(), keys()[1].key_id());
            }
        }
    }
}
