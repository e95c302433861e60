//! `licstored` reads its configuration file, lets flags and the environment override it, prints
//! the result, and refuses an unknown key by name before it touches any data directory.

use std::process::Command;

fn licstored(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_licstored"));
    cmd.args(args)
        .env_remove("LICSTORE_CONFIG")
        .env_remove("LICSTORE_ID");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run licstored");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn flags_beat_the_environment_which_beats_the_file() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/licstored.toml");
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: [(&[&str], Env, &str); 4] = [
        (&[], &[], "heartbeat_ms = 150"),
        (
            &[],
            &[("LICSTORE_HEARTBEAT_MS", "120")],
            "heartbeat_ms = 120",
        ),
        (
            &["--heartbeat-ms", "110"],
            &[("LICSTORE_HEARTBEAT_MS", "120")],
            "heartbeat_ms = 110",
        ),
        (&["--id", "7"], &[], "id = 7"),
    ];
    for (flags, env, want) in cases {
        let mut args = vec!["--config", file, "--print-config"];
        args.extend_from_slice(flags);
        let (code, out, err) = licstored(&args, env);
        assert_eq!(code, 0, "{flags:?} {env:?}: {err}");
        assert!(
            out.lines().any(|l| l == want),
            "{flags:?} {env:?}: want {want:?} in\n{out}"
        );
    }
}

#[test]
fn an_unknown_key_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[raft]\nheartbeat_msec = 5\n").expect("write");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8");
    let args = [
        "--config",
        path.to_str().expect("utf-8"),
        "--id",
        "1",
        "--addr",
        "127.0.0.1:1",
        "--data-dir",
        data_arg,
    ];
    let (code, _, err) = licstored(&args, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("heartbeat_msec"), "{err}");
    assert!(
        !data.exists(),
        "nothing may be created before the configuration is valid"
    );
}

#[test]
fn json_logs_carry_node_term_and_role_on_consensus_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let log_path = dir.path().join("log.jsonl");
    let log = std::fs::File::create(&log_path).expect("log file");
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_licstored"))
        .args(["--insecure", "--id", "1", "--addr", &addr])
        .args(["--init", &format!("1={addr}")])
        .arg("--data-dir")
        .arg(&data)
        .arg("--log-json")
        .env_remove("LICSTORE_CONFIG")
        .env_remove("LICSTORE_LOG_FILTER")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start licstored");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut lines = Vec::new();
    let mut leader_line = None;
    while leader_line.is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        lines = text
            .lines()
            .filter(|l| l.ends_with('}'))
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("every line is JSON"))
            .collect::<Vec<_>>();
        leader_line = lines
            .iter()
            .find(|v| v["fields"]["message"] == "raft state" && v["fields"]["role"] == "leader")
            .cloned();
    }
    let _ = child.kill();
    let _ = child.wait();
    let warned = lines.iter().any(|v| {
        v["level"] == "WARN"
            && v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("INSECURE"))
    });
    assert!(warned, "--insecure logs a warning at start: {lines:?}");
    let line = leader_line.expect("a 'raft state' line naming this node leader");
    assert_eq!(line["fields"]["node_id"], 1, "{line}");
    assert_eq!(line["fields"]["leader"], 1, "{line}");
    assert!(line["fields"]["term"].as_u64() >= Some(1), "{line}");
}

#[test]
fn bad_tls_files_and_busy_ports_stop_the_node_before_it_touches_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy_addr = busy.local_addr().expect("addr").to_string();
    let free_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let g = garbage.to_str().expect("utf-8");
    let tls = [
        "--tls-cert-file",
        g,
        "--tls-key-file",
        g,
        "--tls-peer-ca-file",
        g,
        "--tls-client-ca-file",
        g,
        "--node-name",
        "n",
    ];
    // (extra flags, listen address, what the error must name)
    let cases: [(&[&str], &str, &str); 5] = [
        (&tls, free_addr.as_str(), "tls.cert_file"),
        (&[], free_addr.as_str(), "tls.cert_file: required"),
        (
            &["--insecure", tls[0], g, tls[2], g],
            free_addr.as_str(),
            "tls.insecure",
        ),
        (&["--insecure"], busy_addr.as_str(), "node.listen_addr"),
        (
            &["--insecure", "--metrics-addr", busy_addr.as_str()],
            free_addr.as_str(),
            "node.metrics_addr",
        ),
    ];
    for (extra, addr, key) in cases {
        let data = dir
            .path()
            .join(format!("data-{}", key.replace(['.', ' ', ':'], "-")));
        let mut args = vec!["--id", "1", "--addr", addr, "--data-dir"];
        args.push(data.to_str().expect("utf-8"));
        args.extend_from_slice(extra);
        let (code, _, err) = licstored(&args, &[]);
        assert_ne!(code, 0, "{key}: {err}");
        assert!(err.contains(key), "{key}: {err}");
        assert!(!data.exists(), "{key}: the data directory was created");
    }
    drop(busy);
}
