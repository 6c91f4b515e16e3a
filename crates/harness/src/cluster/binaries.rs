//! How the processes stage starts its components: where the binaries are, the loopback
//! address and ports a cluster takes, and each service's command-line flags for a
//! [`ClusterSpec`].

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use failover_core::timespan::format_timespan;
use serde_json::Value;

use super::{
    Addresses, BEARER_CLIENT_ID, BEARER_CLIENT_SECRET, CFS_ADMIN, ClusterAuth, ClusterSource,
    ClusterSpec, ClusterTls, VENDOR_EXAMPLE,
};

/// Where a cluster's failover service keeps its self-signed TLS identity, under the log folder.
pub const TLS_DIR: &str = "arbiter-tls";

/// The source's flags: its shape, its tick's origin (fixed, so a restarted source goes on with
/// the same sequence numbers), its limits, and its MQTT or OPC UA side (the OPC UA certificate
/// in `opcua_pki`).
pub fn source_args(
    spec: &ClusterSpec,
    addrs: &Addresses,
    origin_unix_ms: i64,
    opcua_pki: Option<&Path>,
) -> Vec<String> {
    let s = |x: &dyn ToString| x.to_string();
    let mut args = vec![
        "--listen".into(),
        s(&addrs.source),
        "--streams".into(),
        s(&spec.streams),
        "--components".into(),
        s(&spec.components),
        "--rate".into(),
        s(&spec.rate_hz),
        "--seed".into(),
        s(&spec.seed),
        "--origin-unix-ms".into(),
        s(&origin_unix_ms),
    ];
    if let Some(rate) = spec.history_rate {
        args.extend(["--history-rate".into(), s(&rate)]);
    }
    if let Some(n) = spec.max_clients {
        args.extend(["--max-clients".into(), s(&n)]);
    }
    match (spec.source_protocol, addrs.source_wire) {
        (ClusterSource::Mqtt, Some(mqtt)) => args.extend(["--mqtt-listen".into(), s(&mqtt)]),
        (ClusterSource::OpcUa, Some(opcua)) => {
            args.extend(["--opcua-listen".into(), s(&opcua)]);
            if let Some(pki) = opcua_pki {
                args.extend(["--opcua-pki".into(), pki.display().to_string()]);
            }
        }
        _ => {}
    }
    args
}

/// The failover service's flags for a cluster's authentication.
pub fn auth_args(auth: ClusterAuth) -> Vec<String> {
    match auth {
        ClusterAuth::None => Vec::new(),
        ClusterAuth::Basic => {
            let doc: Value = serde_json::from_str(VENDOR_EXAMPLE).unwrap_or_default();
            let field = |k: &str| doc[k].as_str().unwrap_or_default().to_string();
            vec![
                "--auth-username".into(),
                field("username"),
                "--auth-password".into(),
                field("password"),
            ]
        }
        ClusterAuth::Bearer { token_lifetime } => vec![
            "--oauth-client-id".into(),
            BEARER_CLIENT_ID.into(),
            "--oauth-client-secret".into(),
            BEARER_CLIENT_SECRET.into(),
            "--oauth-token-lifetime".into(),
            format_timespan(token_lifetime),
        ],
    }
}

/// Binaries of the pair, by component kind.
pub const SOURCE_BIN: &str = "fake-data-source";
/// The endpoint binary.
pub const ENDPOINT_BIN: &str = "fake-endpoint";
/// The arbiter binary.
pub const ARBITER_BIN: &str = "failover-arbiter";
/// The adapter binary.
pub const ADAPTER_BIN: &str = "adapter";

/// Where the service binaries are: `FAILOVER_LAB_BIN_DIR`, else beside this executable (or
/// one folder up, for test executables in `target/*/deps`). Started by `cargo run -p
/// failover-lab` on a fresh clone, where cargo built only this binary, it builds the others
/// first (`cargo build --workspace --bins`, in this executable's profile), saying so.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("FAILOVER_LAB_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().context("cannot locate this executable")?;
    if let Some(dir) = bins_beside(&exe) {
        return Ok(dir);
    }
    if let (Some(cargo), Some(crate_dir)) = (
        std::env::var_os("CARGO"),
        std::env::var_os("CARGO_MANIFEST_DIR"),
    ) {
        let release = exe
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d == "release");
        let mut build = std::process::Command::new(cargo);
        build
            .args(["build", "--workspace", "--bins"])
            .current_dir(crate_dir);
        if release {
            build.arg("--release");
        }
        eprintln!(
            "failover-lab: the service binaries ({ADAPTER_BIN}, {ARBITER_BIN}, ...) are not built yet; \
             building them once with `cargo build --workspace --bins{}`",
            if release { " --release" } else { "" }
        );
        let status = build.status().context("cannot run cargo")?;
        if !status.success() {
            bail!("building the service binaries failed ({status})");
        }
        if let Some(dir) = bins_beside(&exe) {
            return Ok(dir);
        }
    }
    bail!(
        "cannot find the service binaries ({ADAPTER_BIN}, {ARBITER_BIN}, ...) beside {}; build them with \
         `cargo build --release --workspace` or set FAILOVER_LAB_BIN_DIR",
        exe.display()
    )
}

/// The folder holding the service binaries: the executable's, or one or two up.
fn bins_beside(exe: &Path) -> Option<PathBuf> {
    exe.ancestors()
        .skip(1)
        .take(2)
        .find(|dir| dir.join(ADAPTER_BIN).exists())
        .map(Path::to_path_buf)
}

/// A loopback address of its own for one cluster (somewhere in 127.0.0.0/8, never 127.0.0.1),
/// so clusters started side by side cannot take each other's ports.
pub fn cluster_ip() -> std::net::Ipv4Addr {
    use rand::Rng;
    let mut rng = rand::rng();
    std::net::Ipv4Addr::new(
        127,
        rng.random_range(1..=254),
        rng.random_range(0..=255),
        rng.random_range(1..=254),
    )
}

/// `n` distinct free ports on `ip`, each held by a listener: drop the listeners just before
/// the services bind, after anything else on `ip` has bound its own port 0.
pub fn hold_ports(ip: std::net::Ipv4Addr, n: usize) -> anyhow::Result<Vec<std::net::TcpListener>> {
    (0..n)
        .map(|_| std::net::TcpListener::bind((ip, 0)).with_context(|| format!("cannot bind {ip}")))
        .collect()
}

/// The failover service's flags for its vendor API: always served (plain HTTP, or HTTPS with
/// the cluster's self-signed identity when the cluster uses TLS), with the vendor example's
/// username as a member and [`CFS_ADMIN`] as administrator under basic authentication; then the
/// cluster's `arbiter_args`.
pub(super) fn cfs_args(
    spec: &ClusterSpec,
    addrs: &Addresses,
    log_dir: &Path,
) -> anyhow::Result<Vec<String>> {
    let Some(cfs) = addrs.arbiter_cfs else {
        return Ok(spec.arbiter_args.clone());
    };
    let mut args = vec!["--cfs-listen".to_string(), cfs.to_string()];
    args.extend(spec.arbiter_args.iter().cloned());
    match spec.tls {
        ClusterTls::Off => args.push("--cfs-plain-http".into()),
        _ => args.extend([
            "--cfs-cert-dir".into(),
            log_dir.join(TLS_DIR).display().to_string(),
        ]),
    }
    if spec.auth == ClusterAuth::Basic {
        let doc: Value = serde_json::from_str(VENDOR_EXAMPLE)?;
        let field = |k: &str| doc[k].as_str().unwrap_or_default().to_string();
        let users = serde_json::json!({
            "members": [{"username": field("username"), "password": field("password")}],
            "administrators": [{"username": CFS_ADMIN.0, "password": CFS_ADMIN.1}],
        });
        let path = log_dir.join("cfs-users.json");
        std::fs::write(&path, users.to_string())
            .with_context(|| format!("cannot write {}", path.display()))?;
        args.extend(["--cfs-users".into(), path.display().to_string()]);
    }
    Ok(args)
}

/// The hidden `--break RULE` flags of the rules `binary` breaks, of those the cluster breaks.
pub(super) fn break_args(spec: &ClusterSpec, binary: &str) -> Vec<String> {
    spec.broken
        .rules()
        .into_iter()
        .filter(|r| r.service() == binary)
        .flat_map(|r| ["--break".to_string(), r.name().to_string()])
        .collect()
}
