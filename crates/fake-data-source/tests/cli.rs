//! The data source binary's command line.

use std::process::Command;

use failover_proto::testing::{free_port, python_with};

fn source(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fake-data-source"))
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn help_explains_and_bad_shapes_are_refused() {
    let out = source(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for words in [
        "--streams",
        "--components",
        "--rate",
        "--seed",
        "--max-clients",
        "--mqtt-listen",
        "--opcua-listen",
        "--opcua-user",
    ] {
        assert!(help.contains(words), "{words} missing:\n{help}");
    }
    let out = source(&[
        "--streams",
        "4",
        "--components",
        "5",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("components must be 1 to streams"));
    let out = source(&["--rate", "0", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rate must be above 0"));
    let out = source(&["--max-clients", "0", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-clients"));
    let out = Command::new(env!("CARGO_BIN_EXE_fake-data-source"))
        .args(["--listen", "127.0.0.1:0", "--opcua-listen", "127.0.0.1:0"])
        .args(["--opcua-user", "lab"])
        .env_remove("SOURCE_OPCUA_PASSWORD")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SOURCE_OPCUA_PASSWORD"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits up to 5 s for something to listen on `port`.
fn listening(port: u16) -> bool {
    (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
}

/// An OPC UA client that is not ours (FreeOpcUa's asyncua for Python,
/// `tests/opcua_client.py`) browses the source's address space, reads the tick, subscribes and
/// sees every tick of every stream once and in order at its data time, reads an unknown node
/// (BadNodeIdUnknown), and connects signed and encrypted (Basic256Sha256) with a user name, a
/// wrong password refused. CI installs asyncua from PyPI and sets FAILOVER_LAB_REQUIRE_INTEROP=1.
#[test]
fn an_opcua_client_that_is_not_ours_browses_reads_and_subscribes() {
    let Some(python) = python_with("asyncua", "pip install 'asyncua>=1.1,<3'") else {
        return;
    };
    let (grpc, opcua) = (free_port(), free_port());
    let pki = tempfile::tempdir().expect("a temporary folder");
    let password = "not-in-any-log";
    let mut source = Command::new(env!("CARGO_BIN_EXE_fake-data-source"))
        .args(["--listen", &format!("127.0.0.1:{grpc}")])
        .args(["--opcua-listen", &format!("127.0.0.1:{opcua}")])
        .arg("--opcua-pki")
        .arg(pki.path())
        .args(["--opcua-user", "lab"])
        .env("SOURCE_OPCUA_PASSWORD", password)
        .args(["--streams", "8", "--components", "4", "--rate", "20"])
        // 400 history points a second: 40 an answer, so a stream's history comes in pages.
        .args(["--history-rate", "400"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let out = listening(opcua).then(|| {
        Command::new(&python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/opcua_client.py"
            ))
            .args([
                "127.0.0.1",
                &opcua.to_string(),
                "8",
                "4",
                "2",
                "lab",
                password,
            ])
            .output()
            .expect("python runs")
    });
    let _ = source.kill();
    let log = source.wait_with_output().expect("the source's log");
    let out = out.expect("the source serves OPC UA within 5 s");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("all checks passed"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&log.stdout),
        String::from_utf8_lossy(&log.stderr)
    );
    assert!(!log.contains(password), "the password reached the log");
    assert!(
        pki.path().join("own").join("cert.der").exists(),
        "the server's certificate was made in --opcua-pki"
    );
}

/// An MQTT client that is not ours (Eclipse Paho for Python, `tests/mqtt_subscriber.py`)
/// subscribes to the source's MQTT side and sees every tick of every stream, in order, with
/// each component's health; a client that publishes is disconnected. CI installs paho-mqtt
/// from PyPI and sets FAILOVER_LAB_REQUIRE_INTEROP=1, so it cannot skip there.
#[test]
fn an_mqtt_client_that_is_not_ours_sees_every_tick() {
    let Some(python) = python_with("paho.mqtt.client", "pip install 'paho-mqtt>=2,<3'") else {
        return;
    };
    let (grpc, mqtt) = (free_port(), free_port());
    let mut source = Command::new(env!("CARGO_BIN_EXE_fake-data-source"))
        .args(["--listen", &format!("127.0.0.1:{grpc}")])
        .args(["--mqtt-listen", &format!("127.0.0.1:{mqtt}")])
        .args(["--streams", "8", "--components", "4", "--rate", "20"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts");
    let out = listening(mqtt).then(|| {
        Command::new(&python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/mqtt_subscriber.py"
            ))
            .args(["127.0.0.1", &mqtt.to_string(), "8", "4", "2"])
            .output()
            .expect("python runs")
    });
    let _ = source.kill();
    let _ = source.wait();
    let out = out.expect("the source serves MQTT within 5 s");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("all checks passed"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Clients that are not MQTT, or not well-behaved, are shown the door: bytes that are not MQTT,
/// a first packet other than CONNECT, and silence past the keep-alive each close the
/// connection; a subscription filter that is not valid MQTT is refused alone.
#[test]
fn bad_mqtt_clients_are_shown_the_door() {
    use bytes::BytesMut;
    use rumqttc::mqttbytes::{
        QoS,
        v4::{Connect, ConnectReturnCode, Packet, Subscribe, SubscribeFilter, SubscribeReasonCode},
    };
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    let (grpc, mqtt) = (free_port(), free_port());
    let mut source = Command::new(env!("CARGO_BIN_EXE_fake-data-source"))
        .args(["--listen", &format!("127.0.0.1:{grpc}")])
        .args(["--mqtt-listen", &format!("127.0.0.1:{mqtt}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts");
    let connect = || {
        let started = Instant::now();
        loop {
            match std::net::TcpStream::connect(("127.0.0.1", mqtt)) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(5)))
                        .expect("timeout");
                    return s;
                }
                Err(e) if started.elapsed() > Duration::from_secs(5) => panic!("no MQTT: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    };
    let bytes_of = |p: Packet| {
        let mut b = BytesMut::new();
        p.write(&mut b, 1 << 20).expect("encodes");
        b.to_vec()
    };
    // Read packets until one arrives, or None when the server closes the connection.
    let read_packet = |s: &mut std::net::TcpStream, buf: &mut BytesMut| -> Option<Packet> {
        loop {
            if let Ok(p) = Packet::read(buf, 1 << 20) {
                return Some(p);
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let closed = |s: &mut std::net::TcpStream| {
        let mut buf = BytesMut::new();
        read_packet(s, &mut buf).is_none()
    };

    let mut s = connect();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("writes");
    assert!(
        closed(&mut s),
        "bytes that are not MQTT close the connection"
    );

    let mut s = connect();
    s.write_all(&bytes_of(Packet::PingReq)).expect("writes");
    assert!(
        closed(&mut s),
        "a first packet other than CONNECT closes it"
    );

    let mut s = connect();
    let mut hello = Connect::new("bad-client");
    hello.keep_alive = 1;
    s.write_all(&bytes_of(Packet::Connect(hello)))
        .expect("writes");
    let mut buf = BytesMut::new();
    match read_packet(&mut s, &mut buf) {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, ConnectReturnCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    let subscribe = Subscribe {
        pkid: 7,
        filters: vec![
            SubscribeFilter::new("a/#/b".into(), QoS::AtLeastOnce),
            SubscribeFilter::new("failover-lab/+/status".into(), QoS::ExactlyOnce),
        ],
    };
    s.write_all(&bytes_of(Packet::Subscribe(subscribe)))
        .expect("writes");
    let ack = loop {
        match read_packet(&mut s, &mut buf) {
            Some(Packet::SubAck(a)) => break a,
            Some(_) => {}
            None => panic!("closed before SUBACK"),
        }
    };
    assert_eq!(
        (ack.pkid, ack.return_codes),
        (
            7,
            vec![
                SubscribeReasonCode::Failure,
                SubscribeReasonCode::Success(QoS::AtLeastOnce)
            ]
        )
    );
    // Then silence: past 1.5 keep-alives (1.5 s), the source lets go.
    let started = Instant::now();
    while read_packet(&mut s, &mut buf).is_some() {
        assert!(started.elapsed() < Duration::from_secs(5), "still open");
    }
    assert!(started.elapsed() >= Duration::from_secs(1));
    let _ = source.kill();
    let _ = source.wait();
}
