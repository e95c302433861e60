//! Signed bearer tokens: a caller's identity for clients that hold no certificate of their own.
//!
//! A token is a JSON Web Token (RFC 7519) in compact JWS form (RFC 7515) signed with EdDSA over
//! Ed25519 (RFC 8037), so any JWT library can make one: `header.claims.signature`, each part
//! base64url without padding. The header must say `"alg":"EdDSA"` and may name the key with
//! `kid`. The claims must carry `sub` (the caller), `aud` (the audience the server expects, a
//! string or a list holding it) and `exp` (seconds since the Unix epoch); `nbf` and `iat`
//! are checked when present.
//!
//! Token keys are not seal keys: a token signs the JWS input (`header.claims`), which carries
//! no domain string of ours, so the keys that sign tokens must sign nothing else. Keys travel
//! as PEM: a `PUBLIC KEY` (SubjectPublicKeyInfo) on the server, a `PRIVATE KEY` (PKCS #8) with
//! the party that mints tokens, as `openssl genpkey -algorithm ed25519` writes them.
//!
//! Times are parameters, as everywhere in this crate: the verifier passes its clock in.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::{Signer as _, Verifier as _};
pub use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::error::SealError;

/// Longest token accepted, in bytes: far above any sensible token, far below a header limit.
pub const TOKEN_MAX_BYTES: usize = 8 * 1024;
/// Longest `sub` accepted, in bytes.
pub const SUBJECT_MAX_BYTES: usize = 128;
/// Longest a token may still be valid for when it is checked, in seconds (a week): a token
/// cannot be revoked one by one, so a leaked one must not stay good for long.
pub const MAX_TTL_S: u64 = 7 * 24 * 3600;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 key bytes follow.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER prefix of an Ed25519 PKCS #8 private key (version 1, no public key); the seed follows.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// What a token says about its bearer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenClaims {
    /// Who the bearer is.
    pub sub: String,
    /// The audience the token is for.
    pub aud: String,
    /// Not valid from this second on (seconds since the Unix epoch).
    pub exp: u64,
    /// Not valid before this second, when given.
    pub nbf: Option<u64>,
    /// When it was issued, when given; a token issued in the future is refused.
    pub iat: Option<u64>,
    /// The token's own id, when given: what revokes this token alone.
    pub jti: Option<String>,
}

/// Longest token id (`jti`), in bytes.
pub const TOKEN_ID_MAX_BYTES: usize = 128;

/// Whether `jti` is a token id this store accepts: 1 to [`TOKEN_ID_MAX_BYTES`] bytes of
/// printable ASCII, no spaces.
pub fn valid_token_id(jti: &str) -> bool {
    !jti.is_empty() && jti.len() <= TOKEN_ID_MAX_BYTES && jti.bytes().all(|b| b.is_ascii_graphic())
}

/// A key that verifies tokens, with the id a token's `kid` may name it by.
#[derive(Clone, Debug)]
pub struct TokenKey {
    /// The key's id (the server uses its file name without the extension).
    pub id: String,
    /// The Ed25519 public key.
    pub key: VerifyingKey,
}

fn token_error(reason: impl Into<String>) -> SealError {
    SealError::Token {
        reason: reason.into(),
    }
}

/// Signs `claims` with `key` as a compact JWS; `kid` names the key in the header.
pub fn sign_token(key: &SigningKey, kid: Option<&str>, claims: &TokenClaims) -> String {
    let mut header = serde_json::json!({"alg": "EdDSA", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    let mut body = serde_json::json!({"sub": claims.sub, "aud": claims.aud, "exp": claims.exp});
    if let Some(nbf) = claims.nbf {
        body["nbf"] = nbf.into();
    }
    if let Some(iat) = claims.iat {
        body["iat"] = iat.into();
    }
    if let Some(jti) = &claims.jti {
        body["jti"] = jti.as_str().into();
    }
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(body.to_string())
    );
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// Checks `token` against `keys` for `audience` at `now_s`, allowing `leeway_s` of clock
/// difference; the claims when it holds. The reasons name what failed, never how close a
/// forgery came.
pub fn verify_token(
    token: &str,
    keys: &[TokenKey],
    audience: &str,
    now_s: u64,
    leeway_s: u64,
) -> Result<TokenClaims, SealError> {
    if token.len() > TOKEN_MAX_BYTES {
        return Err(token_error(format!("longer than {TOKEN_MAX_BYTES} bytes")));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(body_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(token_error(
            "not three dot-separated parts (header.claims.signature)",
        ));
    };
    let header = json_part("header", header_b64)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("EdDSA") {
        return Err(token_error("header.alg: must be EdDSA"));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(k) => Some(
            k.as_str()
                .ok_or_else(|| token_error("header.kid: not a string"))?,
        ),
    };
    let sig_bytes = decode_part("signature", sig_b64)?;
    let signature = ed25519_dalek::Signature::from_slice(&sig_bytes)
        .map_err(|_| token_error("signature: not 64 bytes"))?;
    let input = &token[..header_b64.len() + 1 + body_b64.len()];
    if kid.is_none() && keys.len() > 1 {
        // One signature check per call, not one per key, for a caller not yet known.
        let why = "header.kid: required when the node has several token keys";
        return Err(token_error(why));
    }
    let candidates = keys.iter().filter(|k| kid.is_none_or(|id| k.id == id));
    let mut verified = false;
    for k in candidates {
        if k.key.verify(input.as_bytes(), &signature).is_ok() {
            verified = true;
            break;
        }
    }
    if !verified {
        let why = match kid {
            Some(id) if !keys.iter().any(|k| k.id == id) => format!("header.kid: no key {id:?}"),
            _ => "signature: does not verify under any token key".into(),
        };
        return Err(token_error(why));
    }
    let claims = claims_of(&json_part("claims", body_b64)?, audience)?;
    check_times(&claims, now_s, leeway_s)?;
    Ok(claims)
}

/// The `jti` and `exp` a token states, read without checking its signature: only to name a
/// token to revoke, never to trust it.
pub fn unverified_id(token: &str) -> Result<(String, u64), SealError> {
    let body_b64 =
        token.trim().split('.').nth(1).ok_or_else(|| {
            token_error("not three dot-separated parts (header.claims.signature)")
        })?;
    let body = json_part("claims", body_b64)?;
    let jti = body
        .get("jti")
        .and_then(|j| j.as_str())
        .filter(|j| valid_token_id(j))
        .ok_or_else(|| token_error("claims.jti: none, so the token cannot be revoked alone"))?;
    let exp = body
        .get("exp")
        .and_then(|e| e.as_u64())
        .ok_or_else(|| token_error("claims.exp: missing"))?;
    Ok((jti.to_owned(), exp))
}

fn decode_part(name: &str, b64: &str) -> Result<Vec<u8>, SealError> {
    URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| token_error(format!("{name}: not base64url without padding")))
}

fn json_part(name: &str, b64: &str) -> Result<serde_json::Value, SealError> {
    let bytes = decode_part(name, b64)?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| token_error(format!("{name}: not JSON")))?;
    match value.is_object() {
        true => Ok(value),
        false => Err(token_error(format!("{name}: not a JSON object"))),
    }
}

/// The claims of a verified token, checked for shape and audience.
fn claims_of(body: &serde_json::Value, audience: &str) -> Result<TokenClaims, SealError> {
    let sub = body
        .get("sub")
        .and_then(|s| s.as_str())
        .ok_or_else(|| token_error("claims.sub: missing or not a string"))?;
    let printable = sub.chars().all(|c| !c.is_control());
    if sub.trim().is_empty() || sub.len() > SUBJECT_MAX_BYTES || !printable || sub != sub.trim() {
        let why = format!("claims.sub: must be 1 to {SUBJECT_MAX_BYTES} bytes of printable text");
        return Err(token_error(why));
    }
    let audiences: Vec<&str> = match body.get("aud") {
        Some(serde_json::Value::String(a)) => vec![a.as_str()],
        Some(serde_json::Value::Array(list)) => list.iter().filter_map(|a| a.as_str()).collect(),
        _ => return Err(token_error("claims.aud: missing")),
    };
    if !audiences.contains(&audience) {
        return Err(token_error(format!("claims.aud: not for {audience:?}")));
    }
    let seconds = |name: &str| -> Result<Option<u64>, SealError> {
        match body.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| token_error(format!("claims.{name}: not whole seconds"))),
        }
    };
    let jti = match body.get("jti") {
        None => None,
        Some(serde_json::Value::String(j)) if valid_token_id(j) => Some(j.clone()),
        Some(_) => {
            let why = format!("claims.jti: must be 1 to {TOKEN_ID_MAX_BYTES} printable characters");
            return Err(token_error(why));
        }
    };
    Ok(TokenClaims {
        sub: sub.to_owned(),
        aud: audience.to_owned(),
        exp: seconds("exp")?.ok_or_else(|| token_error("claims.exp: missing"))?,
        nbf: seconds("nbf")?,
        iat: seconds("iat")?,
        jti,
    })
}

fn check_times(claims: &TokenClaims, now_s: u64, leeway_s: u64) -> Result<(), SealError> {
    if now_s >= claims.exp.saturating_add(leeway_s) {
        return Err(token_error(format!(
            "claims.exp: expired at {}",
            claims.exp
        )));
    }
    if claims.exp.saturating_sub(now_s) > MAX_TTL_S + leeway_s {
        let why = format!("claims.exp: more than {MAX_TTL_S} s ahead (at most a week)");
        return Err(token_error(why));
    }
    if let Some(nbf) = claims
        .nbf
        .filter(|nbf| now_s.saturating_add(leeway_s) < *nbf)
    {
        return Err(token_error(format!("claims.nbf: not valid before {nbf}")));
    }
    if let Some(iat) = claims
        .iat
        .filter(|iat| now_s.saturating_add(leeway_s) < *iat)
    {
        return Err(token_error(format!(
            "claims.iat: issued in the future ({iat})"
        )));
    }
    Ok(())
}

/// The DER inside the one PEM block labelled `label` in `text`.
fn pem_block(field: &str, text: &str, label: &str) -> Result<Vec<u8>, SealError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let bad = |reason: String| SealError::InvalidField {
        field: field.to_owned(),
        reason,
    };
    let start = text
        .find(&begin)
        .ok_or_else(|| bad(format!("no {begin} line")))?;
    let rest = &text[start + begin.len()..];
    let stop = rest
        .find(&end)
        .ok_or_else(|| bad(format!("no {end} line")))?;
    let body: String = rest[..stop].split_whitespace().collect();
    STANDARD
        .decode(body)
        .map_err(|_| bad(format!("the {label} block is not base64")))
}

/// An Ed25519 public key from a `PUBLIC KEY` PEM block (SubjectPublicKeyInfo).
pub fn public_key_from_pem(text: &str) -> Result<VerifyingKey, SealError> {
    let der = pem_block("token_key", text, "PUBLIC KEY")?;
    let bad = |reason: &str| SealError::InvalidField {
        field: "token_key".into(),
        reason: reason.into(),
    };
    let raw = der
        .strip_prefix(&SPKI_PREFIX[..])
        .filter(|k| k.len() == 32)
        .ok_or_else(|| bad("not an Ed25519 public key"))?;
    let bytes: [u8; 32] = raw.try_into().map_err(|_| bad("not 32 key bytes"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not a valid Ed25519 point"))
}

/// An Ed25519 signing key from a `PRIVATE KEY` PEM block (PKCS #8, as openssl writes it).
pub fn signing_key_from_pem(text: &str) -> Result<SigningKey, SealError> {
    let der = pem_block("token_signing_key", text, "PRIVATE KEY")?;
    let seed: [u8; 32] = der
        .strip_prefix(&PKCS8_PREFIX[..])
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| SealError::InvalidField {
            field: "token_signing_key".into(),
            reason: "not an Ed25519 PKCS #8 private key".into(),
        })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// `key` as a `PUBLIC KEY` PEM block.
pub fn public_key_pem(key: &VerifyingKey) -> String {
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(key.as_bytes());
    pem("PUBLIC KEY", &der)
}

/// `key` as a `PRIVATE KEY` PEM block (PKCS #8).
pub fn signing_key_pem(key: &SigningKey) -> String {
    let mut der = PKCS8_PREFIX.to_vec();
    der.extend_from_slice(key.as_bytes());
    pem("PRIVATE KEY", &der)
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn claims() -> TokenClaims {
        TokenClaims {
            sub: "counter-app".into(),
            aud: "licstore".into(),
            exp: NOW + 600,
            nbf: Some(NOW - 10),
            iat: Some(NOW - 10),
            jti: Some("c0ffee-01".into()),
        }
    }

    fn keys() -> Vec<TokenKey> {
        vec![
            TokenKey {
                id: "old".into(),
                key: key(1).verifying_key(),
            },
            TokenKey {
                id: "ops".into(),
                key: key(2).verifying_key(),
            },
        ]
    }

    fn check(token: &str) -> Result<TokenClaims, SealError> {
        verify_token(token, &keys(), "licstore", NOW, 60)
    }

    /// Rebuilds a token with its claims part replaced, keeping the signature.
    fn with_claims(token: &str, json: &str) -> String {
        let parts: Vec<&str> = token.split('.').collect();
        format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(json), parts[2])
    }

    #[test]
    fn a_signed_token_verifies_with_or_without_a_key_id() {
        let token = sign_token(&key(2), Some("ops"), &claims());
        assert_eq!(check(&token), Ok(claims()));
        // Without a kid, only where the node has one key.
        let token = sign_token(&key(2), None, &claims());
        let one_key = &keys()[1..];
        let checked = verify_token(&token, one_key, "licstore", NOW, 60);
        assert_eq!(checked, Ok(claims()));
        let err = check(&token).expect_err("two keys, no kid").to_string();
        assert!(err.contains("header.kid: required"), "{err}");
    }

    #[test]
    fn a_token_names_its_id_and_expiry_unverified() {
        let token = sign_token(&key(9), None, &claims());
        assert_eq!(
            unverified_id(&token),
            Ok(("c0ffee-01".to_owned(), NOW + 600))
        );
        let anonymous = TokenClaims {
            jti: None,
            ..claims()
        };
        let err = unverified_id(&sign_token(&key(9), None, &anonymous)).expect_err("no jti");
        assert!(err.to_string().contains("claims.jti"), "{err}");
        assert!(unverified_id("junk").is_err());
    }

    #[test]
    fn bad_tokens_are_refused_naming_what_failed() {
        let good = claims();
        let expired = TokenClaims {
            exp: NOW - 61,
            ..good.clone()
        };
        let early = TokenClaims {
            nbf: Some(NOW + 61),
            ..good.clone()
        };
        let future = TokenClaims {
            iat: Some(NOW + 3600),
            ..good.clone()
        };
        let elsewhere = TokenClaims {
            aud: "another-store".into(),
            ..good.clone()
        };
        let lasting = TokenClaims {
            exp: NOW + MAX_TTL_S + 3600,
            ..good.clone()
        };
        let blank = TokenClaims {
            sub: " ".into(),
            ..good.clone()
        };
        let spaced_id = TokenClaims {
            jti: Some("two words".into()),
            ..good.clone()
        };
        let signed = sign_token(&key(2), Some("ops"), &good);
        let mut flipped = signed.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        let none_alg = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            signed.split('.').nth(1).expect("claims")
        );
        let cases: Vec<(String, &str)> = vec![
            (sign_token(&key(2), Some("ops"), &expired), "claims.exp"),
            (sign_token(&key(2), Some("ops"), &lasting), "more than"),
            (sign_token(&key(2), Some("ops"), &early), "claims.nbf"),
            (sign_token(&key(2), Some("ops"), &future), "claims.iat"),
            (sign_token(&key(2), Some("ops"), &elsewhere), "claims.aud"),
            (sign_token(&key(2), Some("ops"), &blank), "claims.sub"),
            (sign_token(&key(2), Some("ops"), &spaced_id), "claims.jti"),
            (
                sign_token(&key(9), Some("ops"), &good),
                "signature: does not verify",
            ),
            (
                sign_token(&key(2), Some("old"), &good),
                "signature: does not verify",
            ),
            (sign_token(&key(2), Some("gone"), &good), "header.kid"),
            (flipped, "signature"),
            (none_alg, "header.alg"),
            (
                with_claims(&signed, r#"{"sub":"admin","aud":"licstore","exp":1}"#),
                "signature",
            ),
            ("a.b".into(), "three"),
            ("a.b.c.d".into(), "three"),
            ("!!.b.c".into(), "header: not base64url"),
            ("x".repeat(TOKEN_MAX_BYTES + 1), "longer than"),
        ];
        for (token, wanted) in cases {
            let err = check(&token).expect_err(wanted).to_string();
            assert!(err.contains(wanted), "{wanted}: {err}");
            assert!(err.starts_with("bearer token: "), "{err}");
        }
    }

    #[test]
    fn claims_without_exp_or_sub_are_refused_even_when_signed() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","kid":"ops"}"#);
        let cases = [
            (r#"{"sub":"a","aud":"licstore"}"#, "claims.exp: missing"),
            (r#"{"aud":"licstore","exp":1900000000}"#, "claims.sub"),
            (r#"{"sub":"a","exp":1900000000}"#, "claims.aud"),
            (
                r#"{"sub":"a","aud":["x","licstore"],"exp":-1}"#,
                "claims.exp: not whole",
            ),
            (r#"["not","an","object"]"#, "claims: not a JSON object"),
        ];
        for (json, wanted) in cases {
            let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(json));
            let sig = key(2).sign(input.as_bytes());
            let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()));
            let err = check(&token).expect_err(wanted).to_string();
            assert!(err.contains(wanted), "{wanted}: {err}");
        }
        let listed = r#"{"sub":"a","aud":["x","licstore"],"exp":1800000600}"#;
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(listed));
        let sig = key(2).sign(input.as_bytes());
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()));
        assert_eq!(check(&token).expect("aud in a list").sub, "a");
    }

    #[test]
    fn pem_keys_round_trip_and_foreign_keys_are_refused() {
        let signing = key(7);
        let public_pem = public_key_pem(&signing.verifying_key());
        assert_eq!(
            public_key_from_pem(&public_pem),
            Ok(signing.verifying_key())
        );
        let private_pem = signing_key_pem(&signing);
        let read = signing_key_from_pem(&private_pem).expect("private key");
        assert_eq!(read.to_bytes(), signing.to_bytes());
        assert!(public_key_from_pem(&private_pem).is_err());
        assert!(signing_key_from_pem(&public_pem).is_err());
        // An RSA-shaped SubjectPublicKeyInfo is not an Ed25519 key.
        let foreign = pem("PUBLIC KEY", &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48]);
        let err = public_key_from_pem(&foreign).expect_err("foreign key");
        assert!(
            err.to_string().contains("not an Ed25519 public key"),
            "{err}"
        );
    }
}
