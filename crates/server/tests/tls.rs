//! TLS from the configuration: three real nodes serve gRPC over TLS, require client
//! certificates from one CA, and talk Raft to each other over TLS (their certificates named
//! in `--node-name`). `licctl` with the CA and the admin's client certificate registers
//! itself as an issuer and imports end to end; without a certificate, or in plain text, it
//! does not.

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
    let tls_args = [
        "--tls-cert-file",
        s(&pki.node_cert),
        "--tls-key-file",
        s(&pki.node_key),
        "--tls-client-ca-file",
        s(&pki.ca),
        "--tls-peer-ca-file",
        s(&pki.ca),
        // Without a common name, a certificate is named by its first SAN, tagged with its kind.
        "--node-name",
        "ip:127.0.0.1",
        "--admin-name",
        "dns:licctl.test",
    ];
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
