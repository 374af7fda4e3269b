//! Who may publish and read what on the broker: each device only under its own
//! `fw/v1/{building}/{kind}/{device}/…` topics, and only its own `command` topic to read.
//!
//! The same rules serve two brokers. For Mosquitto they are written out as its password file and
//! ACL file from the registry (`firewatch registry mosquitto-passwd|mosquitto-acl`); the embedded
//! broker's gate ([`super::gate`]) applies them itself. Device passwords are kept in the registry
//! only as Mosquitto's own PBKDF2-SHA512 hashes (`$7$…`), so both brokers check the same entry and
//! no clear password is stored anywhere ([`crate::auth::mosquitto`]). Pure code.

pub use crate::auth::mosquitto::{hash, valid_hash, verify};
use crate::model::Class;
use crate::registry::{DeviceEntry, Registry};
use std::fmt::Write;

/// The device a connection speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Device id (its MQTT user name, or its certificate's common name).
    pub device: String,
    /// The building it is registered in.
    pub building: String,
    /// Its kind.
    pub kind: crate::model::Kind,
}

impl Identity {
    /// The identity of a registered device.
    pub fn of(d: &DeviceEntry) -> Identity {
        Identity {
            device: d.id.clone(),
            building: d.building.clone(),
            kind: d.kind,
        }
    }

    fn prefix(&self) -> String {
        format!(
            "fw/v1/{}/{}/{}/",
            self.building,
            self.kind.as_str(),
            self.device
        )
    }

    /// Whether this device may publish to `topic`: its own telemetry, event and status.
    pub fn may_publish(&self, topic: &str) -> bool {
        topic
            .strip_prefix(self.prefix().as_str())
            .is_some_and(|class| {
                matches!(
                    class.parse::<Class>(),
                    Ok(Class::Telemetry | Class::Event | Class::Status)
                )
            })
    }

    /// Whether this device may subscribe to `filter`: its own command topic only.
    pub fn may_subscribe(&self, filter: &str) -> bool {
        filter
            .strip_prefix(self.prefix().as_str())
            .is_some_and(|class| class == Class::Command.as_str())
    }
}

/// The broker account of firewatch itself, for the generated files.
#[derive(Debug, Clone)]
pub struct Service<'a> {
    /// `mqtt.username`.
    pub user: &'a str,
    /// Its `$7$` hash (from `mqtt.password`), when the password file should carry it.
    pub hash: Option<String>,
}

/// Mosquitto's password file: one `user:$7$…` line per device with a hash (and firewatch's own
/// account when given). Returns the text and the devices left out for having no hash.
pub fn mosquitto_passwd(
    registry: &Registry,
    service: Option<&Service<'_>>,
) -> (String, Vec<String>) {
    let mut out = String::new();
    if let Some(Service {
        user,
        hash: Some(h),
    }) = service
    {
        let _ = writeln!(out, "{user}:{h}");
    }
    let mut missing = Vec::new();
    for d in &registry.devices {
        match &d.mqtt_password_hash {
            Some(h) => {
                let _ = writeln!(out, "{}:{h}", d.id);
            }
            None => missing.push(d.id.clone()),
        }
    }
    (out, missing)
}

/// Mosquitto's ACL file: firewatch reads every device topic and writes commands and rejections;
/// each registered device writes its own telemetry, event and status and reads its own commands.
/// Anything not granted is denied. A device connecting with a client certificate is covered too
/// when the listener sets `use_identity_as_username` (its common name is its device id).
pub fn mosquitto_acl(registry: &Registry, service_user: &str) -> String {
    let mut out = String::from(
        "# Written by `firewatch registry mosquitto-acl` from the registry; do not edit by hand.\n\
         # Each device publishes only its own telemetry, event and status and reads only its own\n\
         # commands; anything not granted is denied.\n\n",
    );
    let _ = writeln!(
        out,
        "user {service_user}\ntopic read fw/v1/#\ntopic write fw/v1/+/+/+/command\ntopic write {}#",
        crate::model::REJECTED_PREFIX
    );
    for d in &registry.devices {
        let id = Identity::of(d);
        let p = id.prefix();
        let _ = writeln!(
            out,
            "\nuser {}\ntopic write {p}telemetry\ntopic write {p}event\ntopic write {p}status\ntopic read {p}command",
            d.id
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    fn ident() -> Identity {
        Identity {
            device: "wp-1".into(),
            building: "b1".into(),
            kind: Kind::WaterPressure,
        }
    }

    #[test]
    fn a_device_publishes_only_its_own_topics_and_reads_only_its_commands() {
        let i = ident();
        for ok in [
            "fw/v1/b1/water_pressure/wp-1/telemetry",
            "fw/v1/b1/water_pressure/wp-1/event",
            "fw/v1/b1/water_pressure/wp-1/status",
        ] {
            assert!(i.may_publish(ok), "{ok}");
        }
        for denied in [
            "fw/v1/b1/water_pressure/wp-2/telemetry",
            "fw/v1/b2/water_pressure/wp-1/telemetry",
            "fw/v1/b1/electrical/wp-1/telemetry",
            "fw/v1/b1/water_pressure/wp-1/command",
            "fw/v1/b1/water_pressure/wp-1/telemetry/x",
            "fw/v1/b1/water_pressure/wp-1/",
            "fw/v1/_rejected/bad_json",
            "fw/v1/b1/water_pressure/wp-1",
            "fw/v1/+/water_pressure/wp-1/event",
        ] {
            assert!(!i.may_publish(denied), "{denied}");
        }
        assert!(i.may_subscribe("fw/v1/b1/water_pressure/wp-1/command"));
        for denied in [
            "fw/v1/#",
            "fw/v1/b1/water_pressure/+/command",
            "fw/v1/b1/water_pressure/wp-1/#",
            "fw/v1/b1/water_pressure/wp-2/command",
            "#",
        ] {
            assert!(!i.may_subscribe(denied), "{denied}");
        }
    }

    #[test]
    fn the_files_name_every_device_and_leave_out_those_without_a_hash() {
        let h = hash("pw", b"0123456789ab");
        let reg = Registry::parse(&format!(
            "[[building]]\nid = \"b1\"\n\
             [[device]]\nid = \"wp-1\"\nbuilding = \"b1\"\nkind = \"water_pressure\"\nmqtt_password_hash = \"{h}\"\n\
             [[device]]\nid = \"cam-1\"\nbuilding = \"b1\"\nkind = \"fire_lane\"\n"
        ))
        .unwrap();
        let service = Service {
            user: "firewatch",
            hash: Some(hash("svc", b"abcdefghijkl")),
        };
        let (passwd, missing) = mosquitto_passwd(&reg, Some(&service));
        let lines: Vec<&str> = passwd.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("firewatch:$7$"));
        assert_eq!(lines[1], format!("wp-1:{h}"));
        assert_eq!(missing, ["cam-1"]);
        let acl = mosquitto_acl(&reg, "firewatch");
        assert!(acl.contains("user firewatch\ntopic read fw/v1/#\n"));
        assert!(acl.contains(
            "user wp-1\ntopic write fw/v1/b1/water_pressure/wp-1/telemetry\n\
             topic write fw/v1/b1/water_pressure/wp-1/event\n\
             topic write fw/v1/b1/water_pressure/wp-1/status\n\
             topic read fw/v1/b1/water_pressure/wp-1/command\n"
        ));
        assert!(acl.contains("user cam-1\ntopic write fw/v1/b1/fire_lane/cam-1/telemetry"));
        assert!(
            !acl.contains('%'),
            "no patterns: every rule names its device"
        );
    }
}
