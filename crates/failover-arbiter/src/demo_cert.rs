//! A self-signed TLS identity for demos and tests (`--tls-self-signed DIR`): a CA of its own
//! and a server certificate it signed, for the names and addresses the service is reached at.
//! The files stay in DIR and are reused by later starts (delete them for new ones):
//! `ca.pem` (give it to adapters with `--trusted-ca`), `cert.pem` (the server certificate and
//! the CA), `key.pem` (the server's private key, readable by its owner only).

use std::path::Path;

use anyhow::Context;
use failover_proto::tls;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The chain and key in `dir`, made first if absent, for `names` (DNS names or IP addresses).
pub fn ensure(
    dir: &Path,
    names: &[String],
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    if !cert_path.exists() || !key_path.exists() {
        generate(dir, names)?;
        tracing::info!(
            dir = %dir.display(),
            ?names,
            "made a self-signed TLS identity; adapters trust it with --trusted-ca {}",
            dir.join("ca.pem").display()
        );
    }
    Ok((tls::load_certs(&cert_path)?, tls::load_key(&key_path)?))
}

fn generate(dir: &Path, names: &[String]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "failover-lab demo CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut server = CertificateParams::new(names.to_vec())
        .context("a --tls-san is neither a DNS name nor an IP address")?;
    server
        .distinguished_name
        .push(DnType::CommonName, "failover-arbiter");
    server.use_authority_key_identifier_extension = true;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server_cert = server.signed_by(&server_key, &issuer)?;

    write(dir, "ca.pem", &ca_cert.pem(), false)?;
    write(
        dir,
        "cert.pem",
        &format!("{}{}", server_cert.pem(), ca_cert.pem()),
        false,
    )?;
    write(dir, "key.pem", &server_key.serialize_pem(), true)?;
    Ok(())
}

fn write(dir: &Path, name: &str, text: &str, private: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let path = dir.join(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_made_once_and_makes_a_server_config() {
        let temp = tempfile::tempdir().expect("a temporary folder");
        let dir = temp.path().join("identity");
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let (chain, key) = ensure(&dir, &names).expect("made");
        assert_eq!(chain.len(), 2, "server certificate and CA");
        let first = std::fs::read(dir.join("cert.pem")).expect("cert");
        tls::server_config(chain, key).expect("a usable identity");
        ensure(&dir, &names).expect("reused");
        assert_eq!(std::fs::read(dir.join("cert.pem")).expect("cert"), first);
    }
}
