//! Mutual TLS for a chaos run, as production runs it.
//!
//! [`Pki::create`] makes a throwaway CA in the run directory (`<run>/tls/`) and signs two
//! certificates with it:
//! - one node certificate ([`NODE_NAME`]) that every node serves and presents to its peers.
//!   Its subject alternative names are every IP address a peer or client may dial: each slot's
//!   advertised and listen address, the client proxies' address and loopback;
//! - one client certificate ([`CLIENT_NAME`]) for every client of the run: the workloads, the
//!   monitor, the checks and the membership calls.
//!
//! The nodes get both CAs, require client certificates, accept Raft only from [`NODE_NAME`]
//! and take [`CLIENT_NAME`] for an admin ([`Pki::node_args`]). Writing and reading licenses
//! also needs the issuer role, which only the store grants: the cluster registers the client
//! as a principal once it has a leader (`Cluster::grant_client`).
//!
//! Keys are fresh per run and never leave the run directory.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, SanType,
};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Common name of the client certificate, and the principal the store knows it as.
pub const CLIENT_NAME: &str = "licchaos";
/// Common name of the node certificate, the one name allowed to send Raft messages.
pub const NODE_NAME: &str = "licchaos node";

/// A client's TLS settings, shared by every channel of a run.
#[derive(Clone)]
pub struct ClientTls(Arc<ClientTlsConfig>);

impl ClientTls {
    /// Trusts `ca_pem` and presents `cert_pem` with `key_pem`.
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> ClientTls {
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca_pem))
            .identity(Identity::from_pem(cert_pem, key_pem));
        ClientTls(Arc::new(config))
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls")
    }
}

/// Two settings are equal when they are the same run's.
impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ClientTls {}

/// An endpoint for `host:port`: `https` with `tls`, plain `http` without.
pub fn endpoint(addr: &str, tls: Option<&ClientTls>) -> Result<Endpoint, tonic::transport::Error> {
    match tls {
        Some(t) => Endpoint::from_shared(format!("https://{addr}"))?.tls_config((*t.0).clone()),
        None => Endpoint::from_shared(format!("http://{addr}")),
    }
}

/// The PEM files of a run and the client settings made from them.
#[derive(Debug)]
pub struct Pki {
    pub ca: PathBuf,
    pub node_cert: PathBuf,
    pub node_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    client: ClientTls,
}

impl Pki {
    /// A CA and the node and client certificates in `dir` (created if missing). The node
    /// certificate is valid for `ips`.
    pub fn create(dir: &Path, ips: &[IpAddr]) -> std::io::Result<Pki> {
        std::fs::create_dir_all(dir)?;
        let (ca_pem, issuer) = make_ca()?;
        let sans: Vec<SanType> = ips.iter().copied().map(SanType::IpAddress).collect();
        let (node_pem, node_key_pem) = make_leaf(&issuer, NODE_NAME, sans)?;
        let (client_pem, client_key_pem) = make_leaf(&issuer, CLIENT_NAME, Vec::new())?;
        let write = |name: &str, text: &str| -> std::io::Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, text)?;
            Ok(path)
        };
        Ok(Pki {
            ca: write("ca.crt", &ca_pem)?,
            node_cert: write("node.crt", &node_pem)?,
            node_key: write("node.key", &node_key_pem)?,
            client_cert: write("client.crt", &client_pem)?,
            client_key: write("client.key", &client_key_pem)?,
            client: ClientTls::from_pem(&ca_pem, &client_pem, &client_key_pem),
        })
    }

    /// The settings of the run's clients.
    pub fn client(&self) -> ClientTls {
        self.client.clone()
    }

    /// The flags that make a node serve and dial over mutual TLS with access control on.
    pub fn node_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        for (flag, path) in [
            ("--tls-cert-file", &self.node_cert),
            ("--tls-key-file", &self.node_key),
            ("--tls-client-ca-file", &self.ca),
            ("--tls-peer-ca-file", &self.ca),
        ] {
            args.push(flag.into());
            args.push(path.into());
        }
        for (flag, name) in [("--node-name", NODE_NAME), ("--admin-name", CLIENT_NAME)] {
            args.push(flag.into());
            args.push(name.into());
        }
        args
    }
}

fn rcgen_error(e: rcgen::Error) -> std::io::Error {
    std::io::Error::other(format!("certificate: {e}"))
}

/// A self-signed CA: its PEM and what signs with it.
fn make_ca() -> std::io::Result<(String, Issuer<'static, KeyPair>)> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "licchaos run CA");
    let key = KeyPair::generate().map_err(rcgen_error)?;
    let cert = params.self_signed(&key).map_err(rcgen_error)?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

/// A certificate named `name` (common name) for `sans`: its PEM and its key's PEM.
fn make_leaf(
    issuer: &Issuer<'static, KeyPair>,
    name: &str,
    sans: Vec<SanType>,
) -> std::io::Result<(String, String)> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = sans;
    let key = KeyPair::generate().map_err(rcgen_error)?;
    let cert = params.signed_by(&key, issuer).map_err(rcgen_error)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_run_pki_writes_every_file_and_gives_nodes_tls_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ip = IpAddr::V4(Ipv4Addr::new(10, 213, 0, 11));
        let pki = Pki::create(dir.path(), &[ip]).expect("pki");
        for path in [
            &pki.ca,
            &pki.node_cert,
            &pki.node_key,
            &pki.client_cert,
            &pki.client_key,
        ] {
            let text = std::fs::read_to_string(path).expect("pem written");
            assert!(text.starts_with("-----BEGIN "), "{}", path.display());
        }
        let args = pki.node_args();
        let has = |a: &str| args.iter().any(|x| x == a);
        assert!(has("--tls-peer-ca-file") && has(NODE_NAME) && has(CLIENT_NAME));
        assert!(!has("--insecure"));
    }

    #[test]
    fn endpoints_use_https_only_with_tls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::create(dir.path(), &[]).expect("pki");
        let plain = endpoint("127.0.0.1:1", None).expect("plain");
        assert_eq!(plain.uri().scheme_str(), Some("http"));
        let tls = endpoint("127.0.0.1:1", Some(&pki.client())).expect("tls");
        assert_eq!(tls.uri().scheme_str(), Some("https"));
        assert_eq!(pki.client(), pki.client());
    }
}
