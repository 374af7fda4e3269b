//! Commands to devices (contract section 2.4): a duty check queued through the API is
//! published at QoS 1 on the device's command topic until the broker acknowledged it, also
//! across broker outages and firewatch restarts, and the device's answer is matched by `ref`.

use crate::common;
use crate::common::{unique, wait_for, Api, Firewatch, Mosquitto, Options, Publisher};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn registry(building: &str) -> String {
    format!(
        r#"
[[building]]
id = "{building}"
[[device]]
id = "uitd-{building}"
building = "{building}"
kind = "transmitter"
[[device]]
id = "wp-{building}"
building = "{building}"
kind = "water_pressure"
"#
    )
}

/// What the device received on its command topic.
#[derive(Debug)]
struct Received {
    qos: QoS,
    payload: Value,
    raw: Vec<u8>,
}

/// A test-side transmitter with a persistent session (the broker keeps its subscription and
/// queues its QoS 1 messages while it is away, also across a broker restart): it reports
/// every command it receives and, when told to, answers a duty check with a
/// `duty_check_answer` event carrying its `ref`.
struct Device {
    commands: tokio::sync::mpsc::UnboundedReceiver<Received>,
    task: tokio::task::JoinHandle<()>,
}

impl Device {
    fn connect(port: u16, building: &str, answer: bool) -> Device {
        let device = format!("uitd-{building}");
        let command_topic = format!("fw/v1/{building}/transmitter/{device}/command");
        let event_topic = format!("fw/v1/{building}/transmitter/{device}/event");
        let mut o = MqttOptions::new(unique("dev"), "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30))
            .set_clean_session(false);
        let (client, mut el) = AsyncClient::new(o, 100);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        client
                            .try_subscribe(command_topic.clone(), QoS::AtLeastOnce)
                            .unwrap();
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == command_topic => {
                        let payload: Value = serde_json::from_slice(&p.payload).unwrap();
                        if answer && payload["command"] == "duty_check" {
                            let a = json!({"event": "duty_check_answer", "state": "pulse",
                                           "ref": payload["ref"]});
                            client
                                .try_publish(
                                    event_topic.clone(),
                                    QoS::AtLeastOnce,
                                    false,
                                    a.to_string(),
                                )
                                .unwrap();
                        }
                        let _ = tx.send(Received {
                            qos: p.qos,
                            payload,
                            raw: p.payload.to_vec(),
                        });
                    }
                    Ok(_) => {}
                    // The broker is down: try again (a bounded pace, not synchronisation).
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Device { commands: rx, task }
    }

    /// The next duty check received, within `T` (probes are skipped).
    async fn next_duty_check(&mut self) -> Received {
        loop {
            let r = tokio::time::timeout(T, self.commands.recv())
                .await
                .expect("a command within the bound")
                .expect("the device task runs");
            if r.payload["command"] != "probe" {
                return r;
            }
        }
    }

    /// Waits until the broker delivers to it: probes on its command topic until one arrives.
    async fn wait_subscribed(&mut self, broker: &Mosquitto, building: &str) {
        let mut probe = Publisher::connect(&broker.url()).await;
        let topic = format!("fw/v1/{building}/transmitter/uitd-{building}/command");
        let start = std::time::Instant::now();
        loop {
            probe.publish(&topic, r#"{"command": "probe"}"#).await;
            let got = tokio::time::timeout(Duration::from_millis(200), self.commands.recv()).await;
            if matches!(got, Ok(Some(_))) {
                return;
            }
            assert!(
                start.elapsed() < T,
                "the device's subscription within {T:?}"
            );
        }
    }

    /// No duty check arrived since the last one taken.
    fn no_more_duty_checks(&mut self) {
        while let Ok(r) = self.commands.try_recv() {
            assert_eq!(
                r.payload["command"], "probe",
                "an extra copy: {:?}",
                r.payload
            );
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn duty_check(fw: &Firewatch, device: &str) -> Value {
    let (status, c) = fw
        .post(
            &format!("/api/v1/devices/{device}/commands"),
            json!({"command": "duty_check", "deadline_s": 600, "by": "值班员 王"}),
        )
        .await;
    assert_eq!(status, 202, "{c}");
    c
}

async fn wait_status(fw: &Firewatch, id: &str, status: &str) -> Value {
    wait_for(&format!("command {id} {status}"), T, || async {
        let c = fw.get(&format!("/api/v1/commands/{id}")).await;
        (c["status"] == status).then_some(c)
    })
    .await
}

/// The whole path: POST, the device receives exactly the command JSON at QoS 1, the PUBACK
/// makes it `published`, the answer makes it `answered` with a delay; an unknown ref is
/// counted as unmatched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duty_check_reaches_the_device_and_its_answer_is_matched() {
    let broker = Mosquitto::start();
    let b = "bcmd1";
    let fw = Firewatch::start(Options {
        mqtt_url: Some(broker.url()),
        registry: Some(registry(b)),
        ..Default::default()
    })
    .await;
    let mut dev = Device::connect(broker.port, b, true);
    dev.wait_subscribed(&broker, b).await;
    let topic = format!("fw/v1/{b}/transmitter/uitd-{b}/command");

    let c = duty_check(&fw, &format!("uitd-{b}")).await;
    let id = c["id"].as_str().unwrap().to_owned();
    assert_eq!(c["status"], "pending");
    assert_eq!(c["command"], "duty_check");
    assert_eq!(c["topic"], topic);
    let reference = c["ref"].as_str().unwrap().to_owned();
    assert!(
        reference.starts_with(&format!("dc-uitd-{b}-")),
        "{reference}"
    );

    let got = dev.next_duty_check().await;
    assert_eq!(got.qos, QoS::AtLeastOnce);
    assert_eq!(got.payload["command"], "duty_check");
    assert_eq!(got.payload["ref"], reference.as_str());
    assert_eq!(got.payload["deadline_s"], 600);
    assert!(got.payload["ts"].is_string());
    assert_eq!(got.payload, c["payload"]);
    assert_eq!(got.raw, c["payload"].to_string().into_bytes());

    let answered = wait_status(&fw, &id, "answered").await;
    assert!(answered["answered_at"].is_string());
    assert!(answered["published_at"].is_string(), "{answered}");
    assert!(answered["answer_delay_ms"].as_i64().unwrap() >= 0);
    assert_eq!(answered["requested_by"], "值班员 王");

    let listed = fw
        .get(&format!("/api/v1/commands?device=uitd-{b}&status=answered"))
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(fw.metric("firewatch_commands_pending").await, 0.0);
    assert_eq!(
        fw.metric("firewatch_commands_total{status=\"answered\"}")
            .await,
        1.0,
        "this firewatch has its own broker: one command, one answer"
    );
    // Each status change is on the change feed, in order.
    let mut feed = common::EventStream::open(
        &fw.base,
        &format!("/api/v1/events?since=0&building={b}"),
        None,
    )
    .await;
    let seen = feed
        .until(T, |e| {
            e.event == "command" && e.data["status"] == "answered"
        })
        .await;
    let statuses: Vec<&str> = seen
        .iter()
        .filter(|e| e.event == "command" && e.data["command"] == id.as_str())
        .map(|e| e.data["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.first(), Some(&"pending"), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&"answered"), "{statuses:?}");

    // An answer to no command is counted.
    let mut probe = Publisher::connect(&broker.url()).await;
    probe
        .publish(
            &format!("fw/v1/{b}/transmitter/uitd-{b}/event"),
            r#"{"event": "duty_check_answer", "state": "pulse", "ref": "dc-nobody"}"#,
        )
        .await;
    wait_for("the unmatched answer counted", T, || async {
        (fw.metric("firewatch_command_answers_unmatched_total").await >= 1.0).then_some(())
    })
    .await;
    // No further copy reached the device.
    dev.no_more_duty_checks();
}

/// A command queued while the broker is down is published when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_queued_while_the_broker_is_down_goes_out_when_it_returns() {
    let mut broker = Mosquitto::start();
    let b = "bcmd2";
    let fw = Firewatch::start(Options {
        mqtt_url: Some(broker.url()),
        registry: Some(registry(b)),
        ..Default::default()
    })
    .await;
    let mut dev = Device::connect(broker.port, b, true);
    dev.wait_subscribed(&broker, b).await;
    broker.stop();
    wait_for("firewatch notices the broker is down", T, || async {
        (fw.metric("firewatch_mqtt_connected").await == 0.0).then_some(())
    })
    .await;
    let c = duty_check(&fw, &format!("uitd-{b}")).await;
    let id = c["id"].as_str().unwrap().to_owned();
    wait_for("the pending gauge", T, || async {
        (fw.metric("firewatch_commands_pending").await == 1.0).then_some(())
    })
    .await;
    assert_eq!(
        fw.get(&format!("/api/v1/commands/{id}")).await["status"],
        "pending"
    );

    broker.restart();
    // Whoever reconnects first, the broker kept the device's session: it gets the command.
    let got = dev.next_duty_check().await;
    assert_eq!(got.payload, c["payload"]);
    assert_eq!(got.qos, QoS::AtLeastOnce);
    let answered = wait_status(&fw, &id, "answered").await;
    assert!(answered["published_at"].is_string(), "{answered}");
    dev.no_more_duty_checks();
}

/// A command still pending when firewatch stops (the broker down) is published after the
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_pending_across_a_restart_is_published_after_it() {
    let mut broker = Mosquitto::start();
    let b = "bcmd3";
    let mut fw = Firewatch::start(Options {
        mqtt_url: Some(broker.url()),
        registry: Some(registry(b)),
        ..Default::default()
    })
    .await;
    let mut dev = Device::connect(broker.port, b, true);
    dev.wait_subscribed(&broker, b).await;
    broker.stop();
    wait_for("firewatch notices the broker is down", T, || async {
        (fw.metric("firewatch_mqtt_connected").await == 0.0).then_some(())
    })
    .await;
    let c = duty_check(&fw, &format!("uitd-{b}")).await;
    let id = c["id"].as_str().unwrap().to_owned();
    assert!(fw.stop().success());

    broker.restart();
    fw.restart().await;
    let got = dev.next_duty_check().await;
    assert_eq!(got.payload["ref"], c["ref"]);
    assert_eq!(got.qos, QoS::AtLeastOnce);
    let answered = wait_status(&fw, &id, "answered").await;
    assert!(answered["answer_delay_ms"].as_i64().unwrap() >= 0);
}

/// Unknown devices, devices of another kind and bad bodies are refused with a clear 4xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_to_unknown_devices_or_other_kinds_are_refused() {
    let b = "bcmd4";
    let fw = Firewatch::start(Options {
        registry: Some(registry(b)),
        ..Default::default()
    })
    .await;
    let post = |device: String, body: Value| {
        let fw = &fw;
        async move {
            fw.post(&format!("/api/v1/devices/{device}/commands"), body)
                .await
        }
    };
    let ok = json!({"command": "duty_check", "deadline_s": 600, "by": "wang"});
    let (s, e) = post("uitd-nobody".into(), ok.clone()).await;
    assert_eq!(s, 404, "{e}");
    assert!(e["error"].as_str().unwrap().contains("uitd-nobody"), "{e}");
    let (s, e) = post(format!("wp-{b}"), ok.clone()).await;
    assert_eq!(s, 409, "{e}");
    assert!(e["error"].as_str().unwrap().contains("transmitter"), "{e}");
    let (s, e) = post(
        format!("uitd-{b}"),
        json!({"command": "reboot", "by": "wang"}),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    let (s, _) = post(
        format!("uitd-{b}"),
        json!({"command": "duty_check", "deadline_s": 0, "by": "wang"}),
    )
    .await;
    assert_eq!(s, 400);
    let r = fw
        .http
        .get(format!("{}/api/v1/commands/c-999999", fw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = fw
        .http
        .get(format!("{}/api/v1/commands?status=lost", fw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        fw.get(&format!("/api/v1/commands?device=uitd-{b}")).await,
        json!([])
    );
}

/// A scripted broker that accepts the connection and subscriptions but never acknowledges a
/// publish: the failure a real broker does not produce on demand. Reports the topics of the
/// QoS 1 publishes it receives.
async fn silent_broker() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                loop {
                    let mut h = [0u8; 1];
                    if sock.read_exact(&mut h).await.is_err() {
                        return;
                    }
                    let (mut len, mut shift) = (0usize, 0);
                    loop {
                        let mut b = [0u8; 1];
                        if sock.read_exact(&mut b).await.is_err() {
                            return;
                        }
                        len |= usize::from(b[0] & 0x7f) << shift;
                        shift += 7;
                        if b[0] & 0x80 == 0 {
                            break;
                        }
                    }
                    let mut body = vec![0u8; len];
                    if sock.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let reply: Vec<u8> = match h[0] >> 4 {
                        1 => vec![0x20, 2, 0, 0],                // CONNACK
                        8 => vec![0x90, 3, body[0], body[1], 1], // SUBACK, QoS 1
                        12 => vec![0xd0, 0],                     // PINGRESP
                        3 if (h[0] >> 1) & 3 == 1 => {
                            let n = usize::from(u16::from_be_bytes([body[0], body[1]]));
                            let topic = String::from_utf8_lossy(&body[2..2 + n]).into_owned();
                            let _ = tx.send(topic);
                            continue; // no PUBACK, ever
                        }
                        _ => continue,
                    };
                    if sock.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, rx)
}

/// A broker that never acknowledges: each attempt times out, is published again after a
/// backoff, and after `commands.max_attempts` the command is `failed` and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_never_acknowledged_fails_after_its_attempts() {
    let (port, mut published) = silent_broker().await;
    let b = "bcmd5";
    let fw = Firewatch::start(Options {
        mqtt_url: Some(format!("mqtt://127.0.0.1:{port}")),
        registry: Some(registry(b)),
        env: vec![
            ("FIREWATCH__COMMANDS__ACK_TIMEOUT_S".into(), "1".into()),
            ("FIREWATCH__COMMANDS__MAX_ATTEMPTS".into(), "2".into()),
        ],
        ..Default::default()
    })
    .await;
    let c = duty_check(&fw, &format!("uitd-{b}")).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let topic = format!("fw/v1/{b}/transmitter/uitd-{b}/command");
    for _ in 0..2 {
        let t = tokio::time::timeout(T, published.recv()).await.unwrap();
        assert_eq!(t.as_deref(), Some(topic.as_str()));
    }
    let failed = wait_status(&fw, &id, "failed").await;
    assert_eq!(failed["attempts"], 2);
    assert!(failed["last_error"].as_str().unwrap().contains("PUBACK"));
    assert!(failed["published_at"].is_null());
    assert_eq!(
        fw.metric("firewatch_commands_total{status=\"failed\"}")
            .await,
        1.0
    );
    assert_eq!(
        fw.metric("firewatch_command_attempts_failed_total").await,
        2.0
    );
    wait_for("no pending command", T, || async {
        (fw.metric("firewatch_commands_pending").await == 0.0).then_some(())
    })
    .await;
    // Failed for good: not published a third time.
    assert!(published.try_recv().is_err());
}
