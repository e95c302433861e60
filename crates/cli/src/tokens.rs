//! `licctl token`: keys for signed bearer tokens, and the tokens themselves, with no server.
//!
//! `keygen` writes an Ed25519 key pair as PEM: the private key (PKCS #8, mode 0600, never
//! overwritten) stays with whoever mints tokens; the public key (`NAME.pub`) goes into the
//! nodes' `access.token_key_files`. `sign` makes a token for one caller; the nodes name that
//! caller `token:<subject>`, the name its principal is registered under. `revoke` (admin,
//! through a node) refuses one token by its `jti` until it expires.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use licstore_seal::token::{
    public_key_pem, sign_token, signing_key_from_pem, signing_key_pem, SigningKey, TokenClaims,
    MAX_TTL_S,
};
use serde::Serialize;

use crate::args::TokenCommand;
use crate::exit::usage;
use crate::output::{emit, OutputFormat, Render, Table};
use crate::seals::write_private;
use crate::Ctx;

/// Runs one `licctl token` command.
pub fn run(ctx: &Ctx, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Keygen { out } => keygen(ctx, &out),
        TokenCommand::Revoke { .. } => Err(usage("token revoke goes through a node")),
        TokenCommand::Sign {
            signing_key,
            subject,
            ttl_s,
            audience,
            kid,
        } => {
            // By default the key is named as the nodes name its public file: the same stem.
            let kid = kid.unwrap_or_else(|| key_id(&signing_key));
            let claims = claims(&subject, ttl_s, &audience)?;
            sign(
                ctx,
                &signing_key,
                (!kid.is_empty()).then_some(kid.as_str()),
                &claims,
            )
        }
    }
}

/// `licctl token revoke`: the token named by `file` or by `jti` and `expires_at_s`.
pub async fn revoke(
    ctx: &Ctx,
    file: Option<PathBuf>,
    jti: Option<String>,
    expires_at_s: Option<u64>,
) -> anyhow::Result<()> {
    let (jti, expires_at_s) = match (file, jti, expires_at_s) {
        (Some(file), _, _) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("read {}", file.display()))?;
            licstore_seal::token::unverified_id(&text)
                .map_err(|e| usage(format!("{}: {e}", file.display())))?
        }
        (None, Some(jti), Some(exp)) => (jti, exp),
        _ => return Err(usage("name the token: FILE, or --jti and --expires-at-s")),
    };
    let request = licstore_proto::v1::RevokeTokenRequest { jti, expires_at_s };
    let mut client = ctx.client()?;
    let done = client
        .retrying(|ch| {
            let request = request.clone();
            async move {
                licstore_proto::v1::access_client::AccessClient::new(ch)
                    .revoke_token(request)
                    .await
            }
        })
        .await?;
    emit(
        ctx.output,
        &RevokedView {
            jti: done.jti,
            expires_at_s: done.expires_at_s,
            revision: done.revision,
        },
    )
}

/// What `licctl token revoke` prints.
#[derive(Clone, Debug, Serialize)]
pub struct RevokedView {
    pub jti: String,
    pub expires_at_s: u64,
    pub revision: u64,
}

impl Render for RevokedView {
    fn table(&self) -> Table {
        let mut t = Table::new(&["jti", "kept until (s)", "revision"]);
        t.row([
            self.jti.clone(),
            self.expires_at_s.to_string(),
            self.revision.to_string(),
        ]);
        t
    }
}

/// `NAME.pub` beside `NAME.key` (or beside `NAME`).
fn public_path(private: &Path) -> PathBuf {
    private.with_extension("pub")
}

/// The id a token's `kid` gives for a key file: its name without the extension, which is
/// what the nodes call the matching `.pub` file.
fn key_id(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn keygen(ctx: &Ctx, out: &Path) -> anyhow::Result<()> {
    let public_file = public_path(out);
    if public_file == out {
        return Err(usage(
            "--out: give the private key a name not ending in .pub",
        ));
    }
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
    // The seed is the private key itself; it lives only in the file written below.
    let key = SigningKey::from_bytes(&seed);
    write_private(out, signing_key_pem(&key).as_bytes())?;
    std::fs::write(&public_file, public_key_pem(&key.verifying_key()))
        .with_context(|| format!("write {}", public_file.display()))?;
    emit(
        ctx.output,
        &KeygenView {
            key_id: key_id(out),
            private_key_file: out.display().to_string(),
            public_key_file: public_file.display().to_string(),
        },
    )
}

/// The claims of a token for `subject`, valid from now for `ttl_s`.
fn claims(subject: &str, ttl_s: u64, audience: &str) -> anyhow::Result<TokenClaims> {
    if ttl_s == 0 || ttl_s > MAX_TTL_S {
        return Err(usage(format!("--ttl-s {ttl_s}: must be 1 to {MAX_TTL_S}")));
    }
    let now_s = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = TokenClaims {
        sub: subject.trim().to_owned(),
        aud: audience.to_owned(),
        exp: now_s + ttl_s,
        nbf: Some(now_s),
        iat: Some(now_s),
        jti: Some(token_id()),
    };
    if claims.sub.is_empty() {
        return Err(usage("--subject: empty"));
    }
    Ok(claims)
}

/// A fresh random token id (`jti`): 16 bytes in hex, what `licctl token revoke` names.
fn token_id() -> String {
    let mut id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut id);
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn sign(ctx: &Ctx, key: &Path, kid: Option<&str>, claims: &TokenClaims) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(key).with_context(|| format!("read {}", key.display()))?;
    let signing = signing_key_from_pem(&text).map_err(|e| usage(format!("--signing-key: {e}")))?;
    let token = sign_token(&signing, kid, claims);
    let view = TokenView {
        principal: format!("token:{}", claims.sub),
        expires_at_s: claims.exp,
        token,
    };
    match ctx.output {
        // The token alone, so that `licctl token sign ... > FILE` makes a token file.
        OutputFormat::Table => {
            println!("{}", view.token);
            Ok(())
        }
        OutputFormat::Json => emit(ctx.output, &view),
    }
}

/// What `licctl token keygen` prints.
#[derive(Clone, Debug, Serialize)]
pub struct KeygenView {
    pub key_id: String,
    pub private_key_file: String,
    pub public_key_file: String,
}

impl Render for KeygenView {
    fn table(&self) -> Table {
        let mut t = Table::key_value();
        t.row(["key id".to_owned(), self.key_id.clone()]);
        t.row(["private key file".to_owned(), self.private_key_file.clone()]);
        t.row(["public key file".to_owned(), self.public_key_file.clone()]);
        t
    }
}

/// What `licctl token sign -o json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct TokenView {
    /// The principal name the nodes give the bearer.
    pub principal: String,
    pub expires_at_s: u64,
    pub token: String,
}

impl Render for TokenView {
    fn table(&self) -> Table {
        let mut t = Table::key_value();
        t.row(["principal".to_owned(), self.principal.clone()]);
        t.row(["expires at (s)".to_owned(), self.expires_at_s.to_string()]);
        t.row(["token".to_owned(), self.token.clone()]);
        t
    }
}
