//! TLS to the failover service (`--tls-self-signed`): it speaks only TLS; an adapter that
//! validates the certificate needs the service's CA and says clearly when it does not have it;
//! `validateEndpointCertificate: false` takes the certificate unchecked. The scenarios
//! `tls-bearer-takeover` and `tls-unchecked-certificate` run whole failovers over it.

use std::time::Duration;

use failover_core::Mode;
use failover_harness::cluster::{Addresses, Cluster, ClusterTls};
use failover_proto::{
    net::{Connector, Network},
    tls::ClientTls,
};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn the_service_speaks_only_tls_with_a_certificate_of_its_own_ca() {
    let mut spec = crate::common::spec(Mode::Hot);
    spec.tls = ClusterTls::TrustedCa;
    let cluster = Cluster::start(spec).await.expect("cluster starts");
    let health = |channel| async move {
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
    };
    // The lab's own client trusts the CA the service made.
    let channel = cluster
        .addrs
        .arbiter_channel()
        .await
        .expect("TLS with the CA");
    health(channel).await.expect("healthy over TLS");

    // Plain HTTP/2 gets no answer.
    let plain = tonic::transport::Endpoint::from_shared(Addresses::url(cluster.addrs.arbiter))
        .expect("url")
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .connect()
        .await;
    if let Ok(channel) = plain {
        assert!(health(channel).await.is_err(), "plain text was served");
    }

    // TLS that validates without the CA refuses the certificate, and says why.
    let url = format!("https://{}", cluster.addrs.arbiter);
    let untrusted = tonic::transport::Endpoint::from_shared(url.clone())
        .expect("url")
        .connect_with_connector(Connector::new(
            Network::tcp(),
            Some(ClientTls::new(true, &[]).expect("system trust")),
        ))
        .await
        .expect_err("an unknown CA is refused");
    let why = failover_proto::tls::explain(&untrusted);
    assert!(why.contains("invalid peer certificate"), "{why}");
    assert!(why.contains("--trusted-ca"), "{why}");

    // Unchecked, it connects.
    let unchecked = tonic::transport::Endpoint::from_shared(url)
        .expect("url")
        .connect_with_connector(Connector::new(
            Network::tcp(),
            Some(ClientTls::new(false, &[]).expect("unchecked")),
        ))
        .await
        .expect("unchecked TLS connects");
    health(unchecked).await.expect("healthy");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_adapter_without_the_ca_refuses_the_certificate_clearly_and_gets_no_role() {
    // The adapters are not given the CA; adapter-b's document asks for validation.
    let mut spec = crate::common::spec(Mode::Hot);
    spec.tls = ClusterTls::Unchecked;
    let p = crate::common::pair(spec).await;
    let state = crate::common::reconfigure_until_error(
        &p,
        "adapter-b",
        |doc| {
            assert!(
                doc["endpoint"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("https://"))
            );
            doc["validateEndpointCertificate"] = Value::Bool(true);
        },
        "certificate is not trusted",
    )
    .await;
    assert_eq!(state["Role"], "None", "{state}");
    let a = p.cluster.failover_state("adapter-a").await.expect("state");
    assert_eq!(a["Role"], "Primary", "{a}");
    let warnings = a["Warnings"].to_string();
    assert!(
        warnings.contains("validateEndpointCertificate is false"),
        "{a}"
    );
}
