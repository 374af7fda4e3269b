//! Per-device identity on the broker: the embedded broker's gate (credentials from the registry,
//! client certificates, TLS, each device only to its own topics, a flood slowed) and Mosquitto
//! with the password and ACL files firewatch writes from the registry, over TLS too.

use crate::common::*;
use firewatch::ingest::access;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeReasonCode,
    TlsConfiguration, Transport,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const WP1_PW: &str = "wp-1-password-0001";
const WP2_PW: &str = "wp-2-password-0002";

fn registry(hashes: bool) -> String {
    let h = |pw: &str| {
        if hashes {
            format!(
                "mqtt_password_hash = \"{}\"\n",
                access::hash(pw, b"saltsaltsalt")
            )
        } else {
            String::new()
        }
    };
    format!(
        "[[building]]\nid = \"acl-b1\"\n[[building]]\nid = \"acl-b2\"\n\
         [[device]]\nid = \"acl-wp-1\"\nbuilding = \"acl-b1\"\nkind = \"water_pressure\"\n{}\
         [[device]]\nid = \"acl-wp-2\"\nbuilding = \"acl-b2\"\nkind = \"water_pressure\"\n{}\
         [[device]]\nid = \"acl-tx-2\"\nbuilding = \"acl-b2\"\nkind = \"transmitter\"\n{}",
        h(WP1_PW),
        h(WP2_PW),
        h(WP2_PW)
    )
}

const OWN: &str = "fw/v1/acl-b1/water_pressure/acl-wp-1/telemetry";
const OTHERS: &str = "fw/v1/acl-b2/water_pressure/acl-wp-2/telemetry";
const OTHERS_COMMAND: &str = "fw/v1/acl-b2/water_pressure/acl-wp-2/command";

fn reading(v: f64) -> Vec<u8> {
    format!("{{\"values\": {{\"pressure_mpa\": {v}}}}}").into_bytes()
}

/// A device connection: `user`/`password` when given, TLS when `tls` is.
fn device(
    port: u16,
    host: &str,
    login: Option<(&str, &str)>,
    tls: Option<rustls::ClientConfig>,
) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new(unique("acl-dev"), host, port);
    o.set_keep_alive(Duration::from_secs(30));
    if let Some((u, p)) = login {
        o.set_credentials(u, p);
    }
    if let Some(t) = tls {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(t),
        )));
    }
    AsyncClient::new(o, 100)
}

/// Polls until the CONNACK: `Ok` when accepted, the refusal otherwise.
async fn connack(el: &mut EventLoop) -> Result<(), String> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(ConnectionError::ConnectionRefused(code)) => return Err(format!("{code:?}")),
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .expect("no CONNACK within 10 s")
}

/// Polls until `want` matches an incoming packet.
async fn until(el: &mut EventLoop, what: &str, want: impl Fn(&Packet) -> bool) -> Packet {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Event::Incoming(p) = el.poll().await.expect(what) {
                if want(&p) {
                    return p;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: not within 10 s"))
}

/// Keeps a connection's event loop running (for publishes that only need to go out).
fn keep_polling(mut el: EventLoop) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { while el.poll().await.is_ok() {} })
}

/// acl-wp-1 publishes as acl-wp-2, then under its own topic: its own reading arrives, the
/// spoofed one never does. Returns the connection's poll task.
async fn spoof_then_own(
    fw: &InProcess,
    c: &AsyncClient,
    el: EventLoop,
) -> tokio::task::JoinHandle<()> {
    c.publish(OTHERS, QoS::AtLeastOnce, false, reading(0.05))
        .await
        .unwrap();
    c.publish(OWN, QoS::AtLeastOnce, false, reading(0.31))
        .await
        .unwrap();
    let polling = keep_polling(el);
    fw.wait_messages("acl-wp-1", 1).await;
    assert_eq!(
        messages(fw, "acl-wp-2").await,
        0,
        "the spoofed reading was stored"
    );
    polling
}

async fn messages(fw: &InProcess, device: &str) -> u64 {
    fw.get(&format!("/api/v1/devices/{device}")).await["messages"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test]
async fn the_embedded_broker_admits_registered_devices_each_to_its_own_topics() {
    let port = free_port();
    let fw = InProcess::start_with(&registry(true), |c| {
        c.mqtt.url = "embedded".into();
        c.mqtt.embedded_listen = format!("127.0.0.1:{port}");
        c.mqtt.embedded_auth = true;
    })
    .await;

    // A wrong password, an unknown device and no credentials at all are refused and counted.
    let (_c, mut el) = device(
        port,
        "127.0.0.1",
        Some(("acl-wp-1", "wrong-password-000")),
        None,
    );
    assert_eq!(connack(&mut el).await, Err("BadUserNamePassword".into()));
    let (_c, mut el) = device(port, "127.0.0.1", Some(("nobody", WP1_PW)), None);
    assert_eq!(connack(&mut el).await, Err("BadUserNamePassword".into()));
    let (_c, mut el) = device(port, "127.0.0.1", None, None);
    assert_eq!(connack(&mut el).await, Err("NotAuthorized".into()));
    assert_eq!(
        fw.metric("firewatch_broker_refused_total{reason=\"credentials\"}")
            .await,
        2.0
    );
    assert_eq!(
        fw.metric("firewatch_broker_refused_total{reason=\"not_authorized\"}")
            .await,
        1.0
    );

    // acl-wp-1 logs in with its own password. Publishing as acl-wp-2 is answered (as Mosquitto
    // does) but never reaches firewatch; subscribing to acl-wp-2's commands is refused.
    let (c, mut el) = device(port, "127.0.0.1", Some(("acl-wp-1", WP1_PW)), None);
    connack(&mut el).await.unwrap();
    c.publish(OTHERS, QoS::AtLeastOnce, false, reading(0.05))
        .await
        .unwrap();
    until(&mut el, "PUBACK of the refused publish", |p| {
        matches!(p, Packet::PubAck(_))
    })
    .await;
    c.subscribe(OTHERS_COMMAND, QoS::AtLeastOnce).await.unwrap();
    let Packet::SubAck(ack) = until(&mut el, "SUBACK", |p| matches!(p, Packet::SubAck(_))).await
    else {
        unreachable!()
    };
    assert_eq!(ack.return_codes, [SubscribeReasonCode::Failure]);
    // Its own topic goes through, after the refused publish on the same connection.
    c.publish(OWN, QoS::AtLeastOnce, false, reading(0.31))
        .await
        .unwrap();
    until(&mut el, "PUBACK of its own publish", |p| {
        matches!(p, Packet::PubAck(_))
    })
    .await;
    fw.wait_messages("acl-wp-1", 1).await;
    assert_eq!(
        messages(&fw, "acl-wp-2").await,
        0,
        "the spoofed reading was stored"
    );
    assert_eq!(
        fw.metric("firewatch_broker_denied_total{action=\"publish\"}")
            .await,
        1.0
    );
    assert_eq!(
        fw.metric("firewatch_broker_denied_total{action=\"subscribe\"}")
            .await,
        1.0
    );
    // It may read its own commands.
    c.subscribe(
        "fw/v1/acl-b1/water_pressure/acl-wp-1/command",
        QoS::AtLeastOnce,
    )
    .await
    .unwrap();
    let Packet::SubAck(ack) = until(&mut el, "SUBACK", |p| matches!(p, Packet::SubAck(_))).await
    else {
        unreachable!()
    };
    assert_eq!(
        ack.return_codes,
        [SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    fw.stop().await;
}

#[tokio::test]
async fn a_flooding_device_is_slowed_and_another_buildings_alarm_still_goes_out() {
    let port = free_port();
    let fw = InProcess::start_with(&registry(true), |c| {
        c.mqtt.url = "embedded".into();
        c.mqtt.embedded_listen = format!("127.0.0.1:{port}");
        c.mqtt.embedded_auth = true;
        c.mqtt.device_rate = 20.0;
        c.mqtt.device_burst = 50.0;
    })
    .await;
    // acl-wp-1 floods: 10,000 readings at QoS 0 as fast as its connection takes them, plus
    // malformed payloads.
    let (flooder, el) = device(port, "127.0.0.1", Some(("acl-wp-1", WP1_PW)), None);
    let flood_loop = keep_polling(el);
    let flood = tokio::spawn(async move {
        for i in 0..10_000_u32 {
            let body = if i % 10 == 0 {
                b"{not json".to_vec()
            } else {
                reading(0.3)
            };
            if flooder
                .publish(OWN, QoS::AtMostOnce, false, body)
                .await
                .is_err()
            {
                break;
            }
        }
    });
    wait_for(
        "the flood to be held back",
        Duration::from_secs(30),
        || async { (fw.metric("firewatch_broker_throttled_total").await > 100.0).then_some(()) },
    )
    .await;
    // Meanwhile the transmitter of another building relays a manual fire alarm: its alert is
    // raised at once, while the flooder is held to 20 messages a second.
    let (c, mut el) = device(port, "127.0.0.1", Some(("acl-tx-2", WP2_PW)), None);
    connack(&mut el).await.unwrap();
    let sent = std::time::Instant::now();
    let alarm = br#"{"event": "manual_alarm", "state": "start", "zone": "1F"}"#;
    c.publish(
        "fw/v1/acl-b2/transmitter/acl-tx-2/event",
        QoS::AtLeastOnce,
        false,
        alarm.to_vec(),
    )
    .await
    .unwrap();
    until(&mut el, "PUBACK", |p| matches!(p, Packet::PubAck(_))).await;
    let _el = keep_polling(el);
    fw.wait_alert(
        "acl-b2",
        "transmitter.fire_alarm",
        "acl-tx-2",
        |_| true,
        Duration::from_secs(10),
    )
    .await;
    let took = sent.elapsed();
    let flooded = messages(&fw, "acl-wp-1").await;
    let rejected = fw
        .metric("firewatch_messages_rejected_total{reason=\"json\"}")
        .await;
    // The flooder got through no more than its burst plus its rate for the time it has sent.
    assert!(
        (flooded as f64) + rejected < 50.0 + 20.0 * (took.as_secs_f64() + 40.0),
        "{flooded} accepted and {rejected} rejected in {took:?}"
    );
    // The figure the benchmark holds to is p99 ≤ 50 ms; here, on a shared test machine, only
    // that the alarm did not wait behind the flood (10,000 messages at 20 a second is 500 s).
    assert!(took < Duration::from_secs(5), "the alarm took {took:?}");
    flood.abort();
    flood_loop.abort();
    fw.stop().await;
}

fn client_tls(dir: &Path, who: Option<&str>) -> rustls::ClientConfig {
    let cert = who.map(|c| dir.join(format!("clients/{c}.crt")));
    let key = who.map(|c| dir.join(format!("clients/{c}.key")));
    firewatch::tls::client_config(
        Some(&dir.join("ca.crt")),
        cert.as_deref().zip(key.as_deref()),
        None,
    )
    .unwrap()
}

#[tokio::test]
async fn the_embedded_broker_speaks_tls_and_knows_devices_by_their_certificates() {
    let certs = make_certs(&["acl-wp-1", "intruder"]);
    let port = free_port();
    let fw = InProcess::start_with(&registry(false), |c| {
        c.mqtt.url = "embedded".into();
        c.mqtt.embedded_listen = format!("127.0.0.1:{port}");
        c.mqtt.embedded_auth = true;
        c.mqtt.embedded_tls_cert = Some(certs.path().join("server.crt"));
        c.mqtt.embedded_tls_key = Some(certs.path().join("server.key"));
        c.mqtt.embedded_client_ca = Some(certs.path().join("ca.crt"));
    })
    .await;
    // Without a certificate the handshake fails; a certificate of no registered device is
    // refused; plain MQTT is not spoken.
    let (_c, mut el) = device(
        port,
        "localhost",
        None,
        Some(client_tls(certs.path(), None)),
    );
    assert!(connack(&mut el).await.is_err());
    let (_c, mut el) = device(
        port,
        "localhost",
        None,
        Some(client_tls(certs.path(), Some("intruder"))),
    );
    assert_eq!(connack(&mut el).await, Err("NotAuthorized".into()));
    let (_c, mut el) = device(port, "127.0.0.1", Some(("acl-wp-1", "x")), None);
    assert!(connack(&mut el).await.is_err());
    wait_for("the refusals counted", Duration::from_secs(10), || async {
        let tls = fw
            .metric("firewatch_broker_refused_total{reason=\"tls\"}")
            .await;
        (tls >= 2.0).then_some(())
    })
    .await;
    assert_eq!(
        fw.metric("firewatch_broker_refused_total{reason=\"not_authorized\"}")
            .await,
        1.0
    );
    // The device's own certificate names it: its reading arrives, and it cannot speak for
    // another device.
    let (c, mut el) = device(
        port,
        "localhost",
        None,
        Some(client_tls(certs.path(), Some("acl-wp-1"))),
    );
    connack(&mut el).await.unwrap();
    let _el = spoof_then_own(&fw, &c, el).await;
    assert_eq!(
        fw.metric("firewatch_broker_denied_total{action=\"publish\"}")
            .await,
        1.0
    );
    fw.stop().await;
}

/// Mosquitto on a free port with `conf` lines added; stopped on drop.
struct Broker {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start(files: &Path, extra: &[String]) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut conf = vec![
            format!("listener {port} 127.0.0.1"),
            "allow_anonymous false".to_owned(),
            format!("password_file {}", files.join("passwd").display()),
            format!("acl_file {}", files.join("acl").display()),
            "log_dest stderr".to_owned(),
            "user root".to_owned(),
        ];
        conf.extend(extra.iter().cloned());
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(&path, conf.join("\n")).unwrap();
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .unwrap();
        let b = Broker {
            port,
            child,
            _dir: dir,
        };
        wait_port(port, "mosquitto");
        b
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `firewatch --config CONFIG registry ARGS…` with `stdin`; returns its stdout.
fn registry_cli(config: &Path, args: &[&str], stdin: &str) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_firewatch"));
    cmd.arg("--config").arg(config).arg("registry").args(args);
    let (ok, stdout, stderr) = run_with_stdin(cmd, stdin);
    assert!(ok, "registry {args:?}: {stderr}");
    stdout
}

/// The registry without hashes, passwords set with `firewatch registry passwd`, and the
/// Mosquitto files written from it: returns (config file, registry file).
fn mosquitto_files(dir: &Path) -> (PathBuf, PathBuf) {
    let reg = dir.join("registry.toml");
    std::fs::write(&reg, registry(false)).unwrap();
    let config = dir.join("fw.toml");
    std::fs::write(
        &config,
        format!(
            "[registry]\nfile = \"{}\"\n[mqtt]\nusername = \"firewatch\"\npassword = \"fw-service-password\"\n",
            reg.display()
        ),
    )
    .unwrap();
    registry_cli(&config, &["passwd", "acl-wp-1"], &format!("{WP1_PW}\n"));
    let generated = registry_cli(&config, &["passwd", "acl-wp-2", "--generate"], "");
    assert!(generated.trim().len() >= 16, "{generated:?}");
    let passwd = dir.join("passwd");
    let acl = dir.join("acl");
    registry_cli(&config, &["mosquitto-passwd", passwd.to_str().unwrap()], "");
    registry_cli(&config, &["mosquitto-acl", acl.to_str().unwrap()], "");
    let text = std::fs::read_to_string(&passwd).unwrap();
    assert!(!text.contains(WP1_PW) && !text.contains("fw-service-password"));
    assert_eq!(text.lines().count(), 3, "{text}"); // firewatch and the two devices with passwords
    (config, reg)
}

#[tokio::test]
async fn mosquitto_enforces_the_password_and_acl_files_written_from_the_registry() {
    let files = tempfile::tempdir().unwrap();
    let (_config, reg) = mosquitto_files(files.path());
    let broker = Broker::start(files.path(), &[]);
    let registry_text = std::fs::read_to_string(&reg).unwrap();
    let fw = InProcess::start_with(&registry_text, |c| {
        c.mqtt.url = format!("mqtt://127.0.0.1:{}", broker.port);
        c.mqtt.username = Some("firewatch".into());
        c.mqtt.password = Some(firewatch::settings::Secret::new("fw-service-password"));
    })
    .await;
    let (_c, mut el) = device(
        broker.port,
        "127.0.0.1",
        Some(("acl-wp-1", "wrong-password")),
        None,
    );
    assert!(connack(&mut el).await.is_err());
    let (c, mut el) = device(broker.port, "127.0.0.1", Some(("acl-wp-1", WP1_PW)), None);
    connack(&mut el).await.unwrap();
    // Mosquitto answers the publish as acl-wp-2 and drops it; the device's own reading, sent
    // after it, arrives.
    let _el = spoof_then_own(&fw, &c, el).await;
    fw.stop().await;
}

#[tokio::test]
async fn firewatch_reaches_mosquitto_over_tls_checking_its_certificate() {
    let certs = make_certs(&["firewatch", "acl-wp-1"]);
    let files = tempfile::tempdir().unwrap();
    let (_config, reg) = mosquitto_files(files.path());
    let tls_port = free_port();
    let c = certs.path();
    let broker = Broker::start(
        files.path(),
        &[
            format!("listener {tls_port} 127.0.0.1"),
            format!("cafile {}", c.join("ca.crt").display()),
            format!("certfile {}", c.join("server.crt").display()),
            format!("keyfile {}", c.join("server.key").display()),
            "require_certificate true".into(),
            "use_identity_as_username true".into(),
        ],
    );
    wait_port(tls_port, "mosquitto's TLS listener");
    let registry_text = std::fs::read_to_string(&reg).unwrap();
    let fw = InProcess::start_with(&registry_text, |cfg| {
        cfg.mqtt.url = format!("mqtts://localhost:{tls_port}");
        cfg.mqtt.ca_file = Some(c.join("ca.crt"));
        cfg.mqtt.client_cert = Some(c.join("clients/firewatch.crt"));
        cfg.mqtt.client_key = Some(c.join("clients/firewatch.key"));
    })
    .await;
    // The device with its own certificate: the listener takes its common name as user name.
    let (dev, mut el) = device(
        tls_port,
        "localhost",
        None,
        Some(client_tls(c, Some("acl-wp-1"))),
    );
    connack(&mut el).await.unwrap();
    let _el = spoof_then_own(&fw, &dev, el).await;
    // A device without a certificate does not get in.
    let (_c, mut el) = device(tls_port, "localhost", None, Some(client_tls(c, None)));
    assert!(connack(&mut el).await.is_err());
    fw.stop().await;
    // firewatch checks the broker's name: one its certificate does not carry fails to connect.
    let mut wrong = firewatch::config::Config::default();
    wrong.mqtt.url = format!("mqtts://localhost:{tls_port}");
    wrong.mqtt.ca_file = Some(c.join("ca.crt"));
    wrong.mqtt.tls_server_name = Some("elsewhere.example.org".into());
    let opts = firewatch::ingest::mqtt::options(&wrong.mqtt).unwrap();
    let (_client, mut el) = AsyncClient::new(opts, 10);
    let e = tokio::time::timeout(Duration::from_secs(10), el.poll())
        .await
        .unwrap();
    assert!(
        e.is_err(),
        "connected to a broker whose certificate names another host"
    );
    drop(broker);
}
