//! TLS from the configuration: three real nodes serve gRPC over TLS, require client
//! certificates from one CA, and talk Raft to each other over TLS (their certificates named
//! in `--node-name`). `licctl` with the CA and the admin's client certificate registers
//! itself as an issuer and imports end to end; without a certificate, or in plain text, it
//! does not. A node with token keys takes a signed bearer token instead of a client
//! certificate, and refuses tokens that are expired, for another audience or unsigned.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Cluster;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, IsCa, Issuer, KeyPair, SanType,
};

/// A CA, a node certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    node_cert: PathBuf,
    node_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn write_pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("ca key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |sans: Vec<SanType>| {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        // No common name: the names come from the SANs.
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = sans;
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &issuer).expect("signed");
        (cert.pem(), key.serialize_pem())
    };
    let loopback = SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let (node_cert, node_key) = leaf(vec![loopback]);
    let client_name = SanType::DnsName("licctl.test".try_into().expect("dns name"));
    let (client_cert, client_key) = leaf(vec![client_name]);
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write pem");
        path
    };
    Pki {
        ca: write("ca.crt", &ca_cert.pem()),
        node_cert: write("node.crt", &node_cert),
        node_key: write("node.key", &node_key),
        client_cert: write("client.crt", &client_cert),
        client_key: write("client.key", &client_key),
    }
}

impl Pki {
    /// The flags of a node serving with this PKI, then `more`.
    fn node_args<'a>(&'a self, more: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "--tls-cert-file",
            s(&self.node_cert),
            "--tls-key-file",
            s(&self.node_key),
            "--tls-client-ca-file",
            s(&self.ca),
            "--tls-peer-ca-file",
            s(&self.ca),
            // Without a common name, a certificate is named by its first SAN, tagged with its
            // kind.
            "--node-name",
            "ip:127.0.0.1",
        ];
        args.extend_from_slice(more);
        args
    }
}

fn licctl(args: &[&str]) -> (i32, String) {
    let path = Path::new(env!("CARGO_BIN_EXE_licstored")).with_file_name("licctl");
    let out = Command::new(path)
        .args(args)
        .env_remove("LICSTORE_ENDPOINTS")
        .output()
        .expect("run licctl");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn a_tls_cluster_replicates_and_refuses_clients_without_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = write_pki(dir.path());
    let tls_args = pki.node_args(&["--admin-name", "dns:licctl.test"]);
    let cluster = Cluster::start(3, &tls_args);
    let endpoints = cluster.endpoints().join(",");
    let with_cert = |rest: &[&str]| {
        let mut args = vec![
            "--endpoints",
            &endpoints,
            "--cacert",
            s(&pki.ca),
            "--cert",
            s(&pki.client_cert),
            "--key",
            s(&pki.client_key),
        ];
        args.extend_from_slice(rest);
        licctl(&args)
    };
    // A leader needs votes, so peers reach each other over TLS.
    let (code, out) = with_cert(&["wait-leader", "--timeout-s", "60"]);
    assert_eq!(code, 0, "{out}");
    // The admin is not an issuer until it registers itself as one, for every code and type.
    let (code, out) = with_cert(&["--output", "json", "whoami"]);
    assert_eq!(code, 0, "{out}");
    let who: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(who["roles"], serde_json::json!(["admin"]), "{out}");
    assert_eq!(who["access_control"], true, "{out}");
    let put = [
        "principal",
        "put",
        "dns:licctl.test",
        "--role",
        "admin,issuer",
    ];
    let (code, out) = with_cert(&[&put[..], &["--issuer-code", "*", "--type", "*"]].concat());
    assert_eq!(code, 0, "{out}");
    let data = dir.path().join("d.jsonl");
    let (code, out) = licctl(&["gen", "--count", "50", "--seed", "9", "--out", s(&data)]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = with_cert(&["import", s(&data)]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = with_cert(&["wait-converged", "--timeout-s", "60"]);
    assert_eq!(code, 0, "every replica has the imported records: {out}");

    // No client certificate: the handshake fails, so no endpoint answers.
    let (code, out) = licctl(&["--endpoints", &endpoints, "--cacert", s(&pki.ca), "digest"]);
    assert_eq!(code, 3, "{out}");
    // Plain text to a TLS port: no answer either.
    let (code, out) = licctl(&["--endpoints", &endpoints, "digest"]);
    assert_eq!(code, 3, "{out}");
    // A certificate without its key is a usage error, found before any connection.
    let (code, out) = licctl(&[
        "--endpoints",
        &endpoints,
        "--cert",
        s(&pki.client_cert),
        "digest",
    ]);
    assert_eq!(code, 2, "{out}");
}

/// Seconds since the Unix epoch.
fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

#[test]
fn a_signed_bearer_token_stands_in_for_a_client_certificate() {
    use licstore_seal::token::{sign_token, signing_key_from_pem, TokenClaims};
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = write_pki(dir.path());
    let ops_key = dir.path().join("ops.key");
    let (code, out) = licctl(&["token", "keygen", "--out", s(&ops_key)]);
    assert_eq!(code, 0, "{out}");
    let ops_pub = dir.path().join("ops.pub");
    let tls_args = pki.node_args(&["--admin-name", "token:ops", "--token-key-file", s(&ops_pub)]);
    let cluster = Cluster::start(1, &tls_args);
    let endpoints = cluster.endpoints().join(",");
    let token_file = |name: &str, token: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, token).expect("write token");
        path
    };
    // licctl signs a token for `subject` with the ops key and writes it to a file.
    let mint = |subject: &str| {
        let sign = [
            "token",
            "sign",
            "--signing-key",
            s(&ops_key),
            "--subject",
            subject,
        ];
        let (code, token) = licctl(&sign);
        assert_eq!(code, 0, "{token}");
        token_file(&format!("{subject}.token"), token.trim())
    };
    let ops = mint("ops");
    let with_token = |token: &Path, rest: &[&str]| {
        let head = ["--endpoints", &endpoints, "--cacert", s(&pki.ca)];
        let token = ["--token-file", s(token)];
        licctl(&[&head[..], &token[..], rest].concat())
    };
    let (code, out) = with_token(&ops, &["wait-leader", "--timeout-s", "60"]);
    assert_eq!(code, 0, "{out}");
    // No client certificate, only the token: the caller is token:ops, an admin by config.
    let (code, out) = with_token(&ops, &["--output", "json", "whoami"]);
    assert_eq!(code, 0, "{out}");
    let who: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (&who["name"], &who["roles"]),
        (&"token:ops".into(), &serde_json::json!(["admin"])),
        "{out}"
    );
    // The admin registers a token caller, which may then act within its roles.
    let put = ["principal", "put", "token:clerk", "--role", "auditor"];
    let (code, out) = with_token(&ops, &put);
    assert_eq!(code, 0, "{out}");
    let clerk = mint("clerk");
    let (code, out) = with_token(&clerk, &["--output", "json", "audit", "list"]);
    assert_eq!(code, 0, "an auditor reads the trail: {out}");
    let (code, out) = with_token(&clerk, &["principal", "put", "token:x", "--role", "admin"]);
    assert_ne!(code, 0, "an auditor manages no principal: {out}");
    assert!(out.contains("PERMISSION_DENIED"), "{out}");

    // One token revoked by the admin is refused; its principal's other tokens are not.
    let first = std::fs::read_to_string(&clerk).expect("read");
    let revoked = token_file("clerk-revoked.token", first.trim());
    let clerk = mint("clerk");
    let (code, out) = with_token(&ops, &["--output", "json", "token", "revoke", s(&revoked)]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = with_token(&revoked, &["whoami"]);
    assert_ne!(code, 0, "a revoked token: {out}");
    assert!(
        out.contains("UNAUTHENTICATED") && out.contains("is revoked"),
        "{out}"
    );
    let (code, out) = with_token(&clerk, &["--output", "json", "audit", "list"]);
    assert_eq!(code, 0, "another token of the same principal: {out}");
    let (code, out) = with_token(&clerk, &["token", "revoke", s(&ops)]);
    assert_ne!(code, 0, "an auditor revokes nothing: {out}");
    assert!(out.contains("PERMISSION_DENIED"), "{out}");

    // Tokens that do not hold are refused, each naming why.
    let key_text = std::fs::read_to_string(&ops_key).expect("ops key");
    let signing = signing_key_from_pem(&key_text).expect("ops key parses");
    let claims = |exp: u64, aud: &str| TokenClaims {
        sub: "ops".into(),
        aud: aud.into(),
        exp,
        nbf: None,
        iat: None,
        jti: None,
    };
    let stranger = licstore_seal::token::SigningKey::from_bytes(&[7; 32]);
    let cases = [
        (
            sign_token(&signing, None, &claims(now_s() - 3600, "licstore")),
            "claims.exp",
        ),
        (
            sign_token(&signing, None, &claims(now_s() + 600, "elsewhere")),
            "claims.aud",
        ),
        (
            sign_token(&stranger, None, &claims(now_s() + 600, "licstore")),
            "signature",
        ),
        ("not-a-token".to_owned(), "three"),
    ];
    for (i, (token, why)) in cases.iter().enumerate() {
        let bad = token_file(&format!("bad{i}.token"), token);
        let (code, out) = with_token(&bad, &["whoami"]);
        assert_ne!(code, 0, "{why}: {out}");
        assert!(
            out.contains("UNAUTHENTICATED") && out.contains(why),
            "{why}: {out}"
        );
    }
    // Neither a certificate nor a token: the handshake is accepted, the call is not.
    let (code, out) = licctl(&["--endpoints", &endpoints, "--cacert", s(&pki.ca), "whoami"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("no client certificate"), "{out}");
    // The refusals are in the audit trail (shipped within a few intervals), read by the
    // auditor.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (code, out) = with_token(&clerk, &["--output", "json", "audit", "list"]);
        assert_eq!(code, 0, "{out}");
        // The first refusal of a call with no identity is recorded: the revoked token's.
        if out.contains("is revoked") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked token's refusal never reached the trail: {out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Calls with no identity are recorded at most once a second per address, each record
    // counting the refusals left out before it: after a quiet second, one more refusal is
    // recorded with the count, and the records then account for every refusal the node made.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let (code, out) = licctl(&["--endpoints", &endpoints, "--cacert", s(&pki.ca), "whoami"]);
    assert_ne!(code, 0, "{out}");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let metrics = cluster.nodes[0].metrics_addr.clone();
    let refused = common::total(
        &runtime.block_on(common::scrape(&metrics)),
        "licstore_access_unauthenticated_total",
        &[],
    );
    assert!(
        refused >= 5.0,
        "four bad tokens and two bare calls: {refused}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (code, out) = with_token(&clerk, &["--output", "json", "audit", "list"]);
        assert_eq!(code, 0, "{out}");
        let trail: serde_json::Value = serde_json::from_str(&out).expect("json");
        let accounted: u64 = trail["records"]
            .as_array()
            .expect("records")
            .iter()
            .filter(|r| r["caller"] == "" && r["outcome"] == "unauthenticated")
            .map(|r| 1 + left_out(r["detail"].as_str().unwrap_or_default()))
            .sum();
        if accounted as f64 == refused {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{accounted} refusals accounted for in the trail, {refused} made: {out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// How many refusals a record of a call with no identity says were left out before it:
/// `from ADDRESS (N more since its last record): ...`.
fn left_out(detail: &str) -> u64 {
    let (_, rest) = detail.split_once(" (").expect("a count");
    let (n, _) = rest.split_once(' ').expect("a count");
    n.parse().expect("a number")
}
