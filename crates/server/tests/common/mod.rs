//! A cluster of real `licstored` processes on loopback for integration tests.
//!
//! Each node gets a free port on 127.0.0.1 and its own data directory under one temporary
//! folder. Every wait is bounded in time; processes are killed by PID when the cluster drops.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use licstore_client::Client;
use licstore_proto::v1 as pb;
use licstore_proto::v1::cluster_client::ClusterClient;
use licstore_proto::v1::licenses_client::LicensesClient;
use licstore_proto::v1::policies_client::PoliciesClient;
use licstore_proto::v1::seals_client::SealsClient;
use licstore_seal::{encode_key_file, SecretKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

/// Upper bound for any wait in these tests.
pub const WAIT: Duration = Duration::from_secs(60);

/// One node process.
pub struct Proc {
    pub id: u64,
    pub addr: String,
    /// The Prometheus endpoint, `ip:port`.
    pub metrics_addr: String,
    pub dir: PathBuf,
    pub child: Option<Child>,
    pub extra_args: Vec<String>,
}

impl Proc {
    /// Node `id` on fresh ports with its data in `dir`, not started.
    pub fn fresh(id: u64, dir: PathBuf) -> Proc {
        Proc {
            id,
            addr: format!("127.0.0.1:{}", free_port()),
            metrics_addr: format!("127.0.0.1:{}", free_port()),
            dir,
            child: None,
            extra_args: Vec::new(),
        }
    }
}

/// A set of node processes.
pub struct Cluster {
    pub root: tempfile::TempDir,
    pub nodes: Vec<Proc>,
}

/// `licctl`, built beside `licstored` by the workspace build.
pub fn licctl() -> PathBuf {
    let path = std::path::Path::new(env!("CARGO_BIN_EXE_licstored")).with_file_name("licctl");
    assert!(
        path.exists(),
        "{} missing: build the workspace",
        path.display()
    );
    path
}

/// The lowest port [`free_port`] hands out.
const PORT_LOW: u16 = 20_000;
/// How many ports above [`PORT_LOW`] it may use: the range ends below the kernel's ephemeral
/// range (32768 and up by default), so an outgoing connection cannot take a port between the
/// pick and the node's bind, the race that binding port 0 and releasing it left open.
const PORT_SPAN: u16 = 12_000;
/// The next candidate offset; shared by the tests of one process so no two get the same port.
static NEXT_PORT: AtomicU32 = AtomicU32::new(u32::MAX);

/// A port on 127.0.0.1 that is free now and that no other test of this process will get.
/// Test processes start at different offsets (from their PID), so they rarely meet.
pub fn free_port() -> u16 {
    let _ = NEXT_PORT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7_919) % u32::from(PORT_SPAN),
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..PORT_SPAN {
        let offset = NEXT_PORT.fetch_add(1, Ordering::SeqCst) % u32::from(PORT_SPAN);
        let port = PORT_LOW + offset as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {PORT_LOW}..{}", PORT_LOW + PORT_SPAN);
}

impl Cluster {
    /// Starts `n` voters; node 1 initialises the cluster.
    pub fn start(n: u64, extra_args: &[&str]) -> Cluster {
        let root = tempfile::tempdir().expect("tempdir");
        let mut nodes: Vec<Proc> = (1..=n)
            .map(|id| Proc {
                extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
                ..Proc::fresh(id, root.path().join(format!("n{id}")))
            })
            .collect();
        let init: Vec<String> = nodes
            .iter()
            .map(|p| format!("{}={}", p.id, p.addr))
            .collect();
        let init = init.join(",");
        for p in nodes.iter_mut() {
            let init_arg = (p.id == 1).then_some(init.as_str());
            spawn(p, init_arg);
        }
        Cluster { root, nodes }
    }

    /// Adds a process that is not yet a member (to be added as a learner).
    pub fn spawn_extra(&mut self, id: u64, extra_args: &[&str]) -> String {
        let mut p = Proc {
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            ..Proc::fresh(id, self.root.path().join(format!("n{id}")))
        };
        spawn(&mut p, None);
        let addr = p.addr.clone();
        self.nodes.push(p);
        addr
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(|p| p.addr.clone()).collect()
    }

    pub fn client(&self) -> Client {
        Client::new(&self.endpoints()).expect("client")
    }

    pub fn node(&self, id: u64) -> &Proc {
        self.nodes.iter().find(|p| p.id == id).expect("node id")
    }

    /// SIGKILL, like a power cut for the process.
    pub fn kill(&mut self, id: u64) {
        let p = self.nodes.iter_mut().find(|p| p.id == id).expect("node id");
        if let Some(mut child) = p.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed node again from its data directory.
    pub fn restart(&mut self, id: u64) {
        let p = self.nodes.iter_mut().find(|p| p.id == id).expect("node id");
        assert!(p.child.is_none(), "node {id} is running");
        spawn(p, None);
    }

    /// Issues through the retrying client: on a loaded machine leadership may move mid-test.
    pub async fn issue_retrying(&self, req: pb::IssueRequest) -> pb::WriteResponse {
        self.client()
            .retrying(|ch| {
                let req = req.clone();
                async move { LicensesClient::new(ch).issue(req).await }
            })
            .await
            .expect("issue")
    }

    /// The id of the node that all running nodes agree is leader.
    pub async fn wait_leader(&self) -> u64 {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(id) = self.agreed_leader().await {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no leader agreed within {WAIT:?}");
    }

    async fn agreed_leader(&self) -> Option<u64> {
        let mut leader = None;
        for p in self.nodes.iter().filter(|p| p.child.is_some()) {
            let s = status(&p.addr).await?;
            if !s.has_leader || leader.is_some_and(|l| l != s.leader_id) {
                return None;
            }
            leader = Some(s.leader_id);
        }
        let l = leader?;
        self.nodes
            .iter()
            .any(|p| p.id == l && p.child.is_some())
            .then_some(l)
    }

    /// Waits until the replicas agree and stay unchanged for longer than the nodes' audit
    /// shipping interval: the audit records of calls already answered are then in the
    /// state, so a digest taken now moves only with what comes next.
    pub async fn wait_settled(&self) -> pb::StateDigestResponse {
        let deadline = Instant::now() + WAIT;
        let mut last = self.wait_converged().await;
        loop {
            tokio::time::sleep(Duration::from_millis(600)).await;
            let now = self.wait_converged().await;
            if now == last {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "the state never settled: {now:?}"
            );
            last = now;
        }
    }

    /// Waits until every running node reports the same applied index and state digest.
    pub async fn wait_converged(&self) -> pb::StateDigestResponse {
        let deadline = Instant::now() + WAIT;
        let mut last = Vec::new();
        while Instant::now() < deadline {
            last.clear();
            for p in self.nodes.iter().filter(|p| p.child.is_some()) {
                if let Some(d) = digest(&p.addr).await {
                    last.push(d);
                }
            }
            let running = self.nodes.iter().filter(|p| p.child.is_some()).count();
            if last.len() == running && last.windows(2).all(|w| w[0] == w[1]) {
                return last[0].clone();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("replicas did not converge within {WAIT:?}: {last:?}");
    }
}

pub fn spawn(p: &mut Proc, init: Option<&str>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_licstored"));
    cmd.arg("--id")
        .arg(p.id.to_string())
        .arg("--addr")
        .arg(&p.addr)
        .arg("--data-dir")
        .arg(&p.dir)
        .arg("--metrics-addr")
        .arg(&p.metrics_addr)
        .args([
            "--heartbeat-ms",
            "100",
            "--election-min-ms",
            "600",
            "--election-max-ms",
            "1200",
        ])
        .args(&p.extra_args)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(init) = init {
        cmd.arg("--init").arg(init);
    }
    // Plain text unless the test gives the node a certificate.
    if !p.extra_args.iter().any(|a| a == "--tls-cert-file") {
        cmd.arg("--insecure");
    }
    p.child = Some(cmd.spawn().expect("start licstored"));
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in &mut self.nodes {
            if let Some(mut child) = p.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn channel(addr: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(5))
        .connect_lazy()
}

pub fn licenses_at(addr: &str) -> LicensesClient<Channel> {
    LicensesClient::new(channel(addr))
}

pub fn cluster_at(addr: &str) -> ClusterClient<Channel> {
    ClusterClient::new(channel(addr))
}

pub fn policies_at(addr: &str) -> PoliciesClient<Channel> {
    PoliciesClient::new(channel(addr))
}

pub fn access_at(addr: &str) -> licstore_proto::v1::access_client::AccessClient<Channel> {
    licstore_proto::v1::access_client::AccessClient::new(channel(addr))
}

pub async fn status(addr: &str) -> Option<pb::NodeStatus> {
    cluster_at(addr)
        .status(pb::StatusRequest {})
        .await
        .ok()?
        .into_inner()
        .node
}

pub async fn digest(addr: &str) -> Option<pb::StateDigestResponse> {
    Some(
        cluster_at(addr)
            .state_digest(pb::StateDigestRequest {})
            .await
            .ok()?
            .into_inner(),
    )
}

/// Citizen ID with a correct check character for birth date `yyyymmdd` and sequence `seq`.
pub fn citizen_id(address: &str, yyyymmdd: &str, seq: u32) -> String {
    let first17 = format!("{address}{yyyymmdd}{seq:03}");
    let check = licstore_model::citizen_id_check_char(&first17).expect("17 digits");
    format!("{first17}{check}")
}

/// A valid resident-ID-card issue request for holder number `n`.
pub fn resident_card(n: u32) -> pb::NewLicense {
    let holder = citizen_id("310115", "19850612", n % 1000);
    let holder = if n >= 1000 {
        citizen_id(
            "310104",
            &format!("19{:02}0101", 40 + n / 1000 % 50),
            n % 1000,
        )
    } else {
        holder
    };
    let template = licstore_model::TemplateRegistry::builtin();
    let t = template.get("resident-id-card").expect("pilot template");
    let face = sample_face(t, &holder);
    pb::NewLicense {
        type_code: t.type_code.clone(),
        holder: Some(pb::Holder {
            kind: pb::HolderKind::CitizenId as i32,
            id: holder.clone(),
            name: "张三".into(),
            legacy_checksum: false,
        }),
        license_number: holder.clone(),
        issuer: Some(pb::Issuer {
            code: issuer_code(),
            name: "上海市公安局浦东分局".into(),
        }),
        issue_date: "2020-01-15".into(),
        valid_from: "2020-01-15".into(),
        valid_until: "2040-01-15".into(),
        region_code: "310115".into(),
        face,
        serial: String::new(),
    }
}

/// A syntactically valid USCC for an issuing office.
pub fn issuer_code() -> String {
    let first17 = "11310000002421234";
    let check = licstore_model::uscc_check_char(first17).expect("17 chars");
    format!("{first17}{check}")
}

/// Face fields that satisfy a template: every required field filled per its kind.
pub fn sample_face(
    t: &licstore_model::LicenseTemplate,
    holder: &str,
) -> std::collections::HashMap<String, String> {
    use licstore_model::FieldKind;
    let mut face = std::collections::HashMap::new();
    for f in t.fields.iter().filter(|f| f.required) {
        let v = match &f.kind {
            FieldKind::Date => "1985-06-12".to_string(),
            FieldKind::Integer => "1".to_string(),
            FieldKind::Enum(values) => values[0].clone(),
            FieldKind::Text => text_for(&f.name, holder),
        };
        face.insert(f.name.clone(), v);
    }
    face
}

fn text_for(name: &str, holder: &str) -> String {
    match name {
        n if n.contains("number") || n.contains("id") => holder.to_string(),
        _ => "上海市浦东新区".to_string(),
    }
}

/// One scrape: series (name with labels, as exported) to value.
pub type Scrape = BTreeMap<String, f64>;

pub async fn scrape(addr: &str) -> Scrape {
    let (status, text) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    parse(&text)
}

/// One HTTP/1.1 GET on the metrics endpoint: status code and the whole response text.
pub async fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect to the metrics endpoint");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    (status, text)
}

/// Sample lines `name{labels} value`; chunk sizes and headers do not parse as numbers after a
/// space and so drop out.
pub fn parse(text: &str) -> Scrape {
    let mut out = Scrape::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if let Ok(v) = value.parse::<f64>() {
            out.insert(series.to_string(), v);
        }
    }
    out
}

/// The sum of every series of `name` whose labels contain each of `labels`.
pub fn total(s: &Scrape, name: &str, labels: &[&str]) -> f64 {
    s.iter()
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name && labels.iter().all(|l| rest.contains(l))
        })
        .map(|(_, v)| v)
        .sum()
}

pub fn has_series(s: &Scrape, name: &str) -> bool {
    let forms = [
        name.to_string(),
        format!("{name}_bucket"),
        format!("{name}_count"),
    ];
    s.keys().any(|series| {
        let n = series.split('{').next().unwrap_or(series);
        forms.iter().any(|f| f == n)
    })
}

/// Whether something accepts connections at `addr` yet.
pub async fn try_connect(addr: &str) -> std::io::Result<()> {
    tokio::net::TcpStream::connect(addr).await.map(drop)
}

/// The field a refusal names in its `licstore-field` metadata ("" when none).
pub fn field_of(status: &tonic::Status) -> String {
    status
        .metadata()
        .get("licstore-field")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Runs licctl with JSON output and no endpoints from the environment; returns its exit code
/// and parsed stdout (null, with stderr printed, when it printed no JSON).
pub fn licctl_json(args: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(licctl())
        .args(args)
        .args(["-o", "json"])
        .env_remove("LICSTORE_ENDPOINTS")
        .output()
        .expect("run licctl");
    let value = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    if value.is_null() {
        eprintln!("licctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.code().unwrap_or(-1), value)
}

/// Writes `key` as a key file `name` under `dir`; returns its path.
pub fn write_key(dir: &std::path::Path, name: &str, key: &SecretKey) -> String {
    let path = dir.join(name);
    std::fs::write(&path, encode_key_file(key)).expect("write key");
    path.display().to_string()
}

/// A Seals client of the node at `addr` (connects on first use).
pub fn seals_at(addr: &str) -> SealsClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy();
    SealsClient::new(channel)
}

/// The service item the tests' verifications name unless they test items.
pub const TEST_ITEM: &str = "户籍业务办理";

/// The purpose the tests' verifications state.
pub const TEST_PURPOSE: &str = "integration test";

/// A Verify request for resident card `n` of [`resident_card`].
pub fn verify_card(n: u32, service_item: &str) -> pb::VerifyRequest {
    let card = resident_card(n);
    let holder = card.holder.expect("holder");
    pb::VerifyRequest {
        holder_kind: holder.kind,
        holder_id: holder.id,
        type_code: card.type_code,
        service_item: service_item.into(),
        purpose: TEST_PURPOSE.into(),
        ..Default::default()
    }
}

/// Registers each of `names` as a service item that accepts every built-in license type,
/// through the node at `addr`; retried (within [`WAIT`]) while a leader is elected.
pub async fn register_items(addr: &str, names: &[&str]) {
    let types: Vec<String> = licstore_model::TemplateRegistry::builtin()
        .iter()
        .map(|t| t.type_code.clone())
        .collect();
    for name in names {
        let request = pb::PutServiceItemRequest {
            item: Some(pb::ServiceItem {
                name: (*name).into(),
                department: "测试部门".into(),
                type_codes: types.clone(),
            }),
        };
        let deadline = Instant::now() + WAIT;
        loop {
            match policies_at(addr).put_service_item(request.clone()).await {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("register {name}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("register service item {name}: {e}"),
            }
        }
    }
}

/// The seal verdict the node at `addr` gives resident card `n`, for [`TEST_ITEM`].
pub async fn seal_verdict(addr: &str, n: u32) -> pb::SealVerdict {
    let r = licenses_at(addr)
        .verify(verify_card(n, TEST_ITEM))
        .await
        .expect("verify");
    r.into_inner().seal()
}
