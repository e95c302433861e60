//! Revoked bearer tokens: token ids (`jti`) refused before their expiry, replicated like any
//! data so every node refuses them once it has applied the revocation.
//!
//! A revocation is kept under `policies` key `x` + jti with the token's expiry (seconds since
//! the Unix epoch, `u64` big-endian). Past that expiry the token is refused anyway, so the
//! leader forgets such entries by naming them in a `ForgetRevokedTokens` command: the clock is
//! read when proposing, never when applying.

use serde::{Deserialize, Serialize};

use crate::apply::Applier;
use crate::command::{RejectCode, Rejection};
use crate::keys::{self, CF_POLICIES};
use crate::StoreError;

/// Longest token id, in bytes (as `licstore_seal::token::TOKEN_ID_MAX_BYTES`).
pub const TOKEN_ID_MAX_BYTES: usize = 128;

/// Most ids one `ForgetRevokedTokens` command names.
pub const FORGET_BATCH_MAX: usize = 1000;

/// A revoked token: its id and when it would have expired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedToken {
    /// The token's `jti`.
    pub jti: String,
    /// Its `exp`, seconds since the Unix epoch.
    pub expires_at_s: u64,
}

/// Refuses a token id that no token could carry: 1 to [`TOKEN_ID_MAX_BYTES`] bytes of
/// printable ASCII without spaces.
pub fn check_token_id(field: &str, jti: &str) -> Result<(), Rejection> {
    let ok = !jti.is_empty()
        && jti.len() <= TOKEN_ID_MAX_BYTES
        && jti.bytes().all(|b| b.is_ascii_graphic());
    match ok {
        true => Ok(()),
        false => Err(Rejection::new(
            RejectCode::InvalidArgument,
            field,
            format!("must be 1 to {TOKEN_ID_MAX_BYTES} printable characters without spaces"),
        )),
    }
}

pub(crate) fn decode_expiry(bytes: &[u8]) -> Result<u64, StoreError> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::corrupt("revoked token", "expiry not 8 bytes"))?;
    Ok(u64::from_be_bytes(array))
}

impl Applier<'_, '_> {
    /// Revokes the token `jti`, which expires at `expires_at_s`; revoking it again keeps the
    /// later expiry.
    pub(crate) fn revoke_token(
        &mut self,
        jti: &str,
        expires_at_s: u64,
    ) -> Result<Result<RevokedToken, Rejection>, StoreError> {
        if let Err(rejection) = check_token_id("jti", jti) {
            return Ok(Err(rejection));
        }
        if expires_at_s == 0 {
            let why = "required: the token's exp, seconds since the Unix epoch";
            return Ok(Err(Rejection::new(
                RejectCode::InvalidArgument,
                "expires_at_s",
                why,
            )));
        }
        let key = keys::revoked_token_key(jti);
        let kept = match self.txn.get(CF_POLICIES, &key)? {
            Some(bytes) => decode_expiry(&bytes)?.max(expires_at_s),
            None => expires_at_s,
        };
        self.txn
            .put(CF_POLICIES, &key, kept.to_be_bytes().to_vec())?;
        Ok(Ok(RevokedToken {
            jti: jti.to_owned(),
            expires_at_s: kept,
        }))
    }

    /// Forgets the revocations of `jtis` kept until before `expired_before_s`; one renewed
    /// with a later expiry since the leader listed it stays. Answers how many went.
    pub(crate) fn forget_revoked_tokens(
        &mut self,
        jtis: &[String],
        expired_before_s: u64,
    ) -> Result<u64, StoreError> {
        let mut forgotten = 0;
        for jti in jtis.iter().take(FORGET_BATCH_MAX) {
            let key = keys::revoked_token_key(jti);
            let Some(bytes) = self.txn.get(CF_POLICIES, &key)? else {
                continue;
            };
            if decode_expiry(&bytes)? < expired_before_s {
                self.txn.delete(CF_POLICIES, &key)?;
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_are_printable_and_bounded() {
        let long = "a".repeat(TOKEN_ID_MAX_BYTES + 1);
        let cases = [
            ("c0ffee-01", true),
            ("", false),
            ("two words", false),
            ("tab\\t", true),
            ("tab\t", false),
            ("令牌", false),
            (long.as_str(), false),
        ];
        for (jti, ok) in cases {
            assert_eq!(check_token_id("jti", jti).is_ok(), ok, "{jti:?}");
        }
    }
}
