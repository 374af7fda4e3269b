//! Configuration (contract section 6): built-in defaults → `config/default.toml` → `--config FILE`
//! → `FIREWATCH__{SECTION}__{KEY}` environment variables. [`Config::load`] layers them;
//! [`Config::validate`] reports every problem with its key path.

pub use crate::api::HttpConfig;
pub use crate::duty::DutyConfig;
pub use crate::ingest::commands::CommandsConfig;
pub use crate::ingest::mqtt::{parse_mqtt_url, MqttConfig, MqttUrl};
pub use crate::northbound::NorthboundConfig;
pub use crate::notify::{
    DingtalkConfig, EmailConfig, NotifyConfig, SmsConfig, WebhookConfig, WecomConfig,
};
pub use crate::settings::{Problem, Secret};
pub use crate::store::StorageConfig;
pub use crate::summary::SummaryConfig;
pub use crate::tsdb::TsdbConfig;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// MQTT broker connection.
    pub mqtt: MqttConfig,
    /// HTTP API and dashboard.
    pub http: HttpConfig,
    /// (added) Access control of the API and the dashboard (`[auth]`).
    pub auth: crate::auth::AuthConfig,
    /// Embedded store, spool and outbox.
    pub storage: StorageConfig,
    /// InfluxDB v2 write API.
    pub tsdb: TsdbConfig,
    /// E-mail notifications.
    pub email: EmailConfig,
    /// Retry policy of every notification channel.
    pub notify: NotifyConfig,
    /// Webhooks told of every alert transition (`[[webhook]]`).
    pub webhook: Vec<WebhookConfig>,
    /// WeCom group robots told of every alert transition (`[[wecom]]`).
    pub wecom: Vec<WecomConfig>,
    /// DingTalk group robots told of every alert transition (`[[dingtalk]]`).
    pub dingtalk: Vec<DingtalkConfig>,
    /// The SMS gateway, and the phones told of critical alerts (`[sms]`).
    pub sms: Option<SmsConfig>,
    /// Rule file.
    pub rules: RulesConfig,
    /// Device registry file.
    pub registry: RegistryConfig,
    /// Commands to devices.
    pub commands: CommandsConfig,
    /// Escalation policies (`[[escalation.policy]]`).
    pub escalation: crate::alerts::escalate::EscalationConfig,
    /// Duty roster file.
    pub duty: DutyConfig,
    /// Hazard work orders (`[workorders]`).
    pub workorders: crate::store::workorders::WorkordersConfig,
    /// (added) Upstream (city) platforms alerts, device states and readings are forwarded to
    /// (`[[northbound]]`).
    pub northbound: Vec<NorthboundConfig>,
    /// (added) The daily summary to each building's fire-safety manager (`[summary]`).
    pub summary: SummaryConfig,
    /// (added) The GB/T 26875.3 gateway for control-room transmitters (`[gb26875]`).
    pub gb26875: crate::ingest::gbt26875::server::GbConfig,
}

/// `[rules]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Rule definitions and thresholds.
    pub file: PathBuf,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            file: PathBuf::from("config/rules.toml"),
        }
    }
}

/// `[registry]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Buildings and devices; optional (a missing file means an empty, non-strict registry).
    pub file: PathBuf,
    /// Devices the registry does not list that firewatch keeps a record of (open mode); messages
    /// of further unknown devices are rejected as `unregistered` and counted.
    pub max_unregistered: usize,
    /// Latest values kept per device (`metric` or `metric.channel`); values of further channel
    /// names are stored as readings but not kept as latest values, and counted.
    pub max_values_per_device: usize,
    /// (added) Seconds between looks at the file's modification time and size; a change
    /// reloads it (as `POST /api/v1/registry/reload` does). 0 turns the watch off.
    pub watch_s: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        let limits = crate::rules::engine::Limits::default();
        RegistryConfig {
            file: PathBuf::from("config/registry.toml"),
            max_unregistered: limits.max_unregistered,
            max_values_per_device: limits.max_values,
            watch_s: 5,
        }
    }
}

/// Where the default file is looked for, relative to the working directory.
pub const DEFAULT_FILE: &str = "config/default.toml";

impl Config {
    /// Layers defaults, `config/default.toml` (when present), `file` and the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, Problem> {
        Self::load_from(Path::new(DEFAULT_FILE), file, std::env::vars())
    }

    /// [`Config::load`] with an explicit default file and environment (for tests).
    pub fn load_from(
        default_file: &Path,
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, Problem> {
        let mut b = config::Config::builder();
        if default_file.exists() {
            b = b.add_source(config::File::from(default_file).format(config::FileFormat::Toml));
        }
        if let Some(f) = file {
            if !f.exists() {
                return Err(Problem::new(
                    "--config",
                    format!("file {} does not exist", f.display()),
                ));
            }
            b = b.add_source(config::File::from(f).format(config::FileFormat::Toml));
        }
        let mut vars: config::Map<String, String> = config::Map::new();
        for (k, v) in env
            .into_iter()
            .filter(|(k, _)| k.starts_with("FIREWATCH__"))
        {
            // An array entry (`FIREWATCH__WEBHOOK__0__SECRET`, also `WECOM`, `DINGTALK`) sets `webhook[0].secret` over
            // what the files say; the environment source would replace the whole array.
            match array_key(&k) {
                Some(path) => {
                    b = b
                        .set_override(path, v)
                        .map_err(|e| Problem::new(k.as_str(), e.to_string()))?;
                }
                None => {
                    vars.insert(k, v);
                }
            }
        }
        b = b.add_source(
            config::Environment::with_prefix("FIREWATCH")
                .prefix_separator("__")
                .separator("__")
                .source(Some(vars)),
        );
        let mut built = b
            .build()
            .map_err(|e| Problem::new("config", e.to_string()))?;
        let problems = secret_files(&mut built.cache);
        if let Some(p) = problems.into_iter().next() {
            return Err(p);
        }
        built.try_deserialize::<Config>().map_err(|e| {
            let text = e.to_string();
            // The config crate says "… for key `a.b` in <source>"; surface the key.
            match text.split_once(" for key `") {
                Some((msg, rest)) => match rest.split_once('`') {
                    Some((key, source)) => Problem::new(key, format!("{msg}{source}")),
                    None => Problem::new("config", text.clone()),
                },
                None => Problem::new("config", text),
            }
        })
    }

    /// Checks every value that deserialised but may still be wrong; returns all problems.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = self.mqtt.validate();
        p.extend(self.http.validate());
        p.extend(self.auth.validate());
        p.extend(self.storage.validate());
        p.extend(self.tsdb.validate());
        p.extend(self.email.validate());
        p.extend(self.commands.validate());
        p.extend(self.gb26875.validate());
        p.extend(self.notify.validate());
        p.extend(self.escalation.validate());
        p.extend(self.workorders.validate());
        p.extend(crate::notify::webhook::validate(&self.webhook));
        p.extend(crate::notify::wecom::validate(&self.wecom));
        p.extend(crate::notify::dingtalk::validate(&self.dingtalk));
        p.extend(self.sms.iter().flat_map(SmsConfig::validate));
        p.extend(crate::northbound::validate(&self.northbound));
        p.extend(self.summary.validate());
        p
    }
}

/// Every key whose value is a [`Secret`], as a path of table keys: `[]` is every entry of an
/// array of tables, `*` every key of a table (the header maps). Each may instead be given as
/// `KEY_file`, the path of a file holding it (systemd credentials, Kubernetes secrets).
/// A new `Secret` field is added here too.
pub const SECRET_KEYS: &[&[&str]] = &[
    &["mqtt", "password"],
    &["tsdb", "token"],
    &["email", "smtp_url"],
    &["auth", "bootstrap_token"],
    &["http", "ack_token"],
    &["webhook", "[]", "secret"],
    &["wecom", "[]", "url"],
    &["dingtalk", "[]", "url"],
    &["dingtalk", "[]", "secret"],
    &["sms", "url"],
    &["sms", "headers", "*"],
    &["northbound", "[]", "password"],
    &["northbound", "[]", "token"],
    &["northbound", "[]", "headers", "*"],
];

/// Replaces each secret's `KEY_file = PATH` (see [`SECRET_KEYS`]) by `KEY = <the file's
/// content, one trailing newline stripped>`, in the layered tree before it is deserialised.
/// Problems (unreadable file, both `KEY` and `KEY_file`) name the key and the path, never the
/// content.
pub fn secret_files(root: &mut config::Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    for pattern in SECRET_KEYS {
        resolve(root, pattern, String::new(), &mut problems);
    }
    problems
}

fn resolve(v: &mut config::Value, pattern: &[&str], at: String, out: &mut Vec<Problem>) {
    use config::ValueKind;
    let Some((&first, rest)) = pattern.split_first() else {
        return;
    };
    match (&mut v.kind, first) {
        (ValueKind::Array(items), "[]") => {
            for (i, item) in items.iter_mut().enumerate() {
                resolve(item, rest, format!("{at}[{i}]"), out);
            }
        }
        (ValueKind::Table(t), _) if rest.is_empty() => {
            let names: Vec<String> = if first == "*" {
                t.keys()
                    .filter_map(|k| k.strip_suffix("_file"))
                    .map(str::to_owned)
                    .collect()
            } else {
                vec![first.to_owned()]
            };
            for name in names {
                let key = if at.is_empty() {
                    name.clone()
                } else {
                    format!("{at}.{name}")
                };
                let Some(file) = t.remove(&format!("{name}_file")) else {
                    continue;
                };
                let Ok(path) = file.into_string() else {
                    out.push(Problem::new(format!("{key}_file"), "is not a file path"));
                    continue;
                };
                if t.contains_key(&name) {
                    out.push(Problem::new(
                        key.as_str(),
                        format!("set both {key} and {key}_file: keep one"),
                    ));
                    continue;
                }
                match std::fs::read_to_string(&path) {
                    Ok(text) => {
                        let text = text.strip_suffix('\n').unwrap_or(&text);
                        let text = text.strip_suffix('\r').unwrap_or(text);
                        t.insert(
                            name,
                            config::Value::new(None, ValueKind::String(text.to_owned())),
                        );
                    }
                    Err(e) => out.push(Problem::new(
                        format!("{key}_file"),
                        format!("cannot read {path}: {e}"),
                    )),
                }
            }
        }
        (ValueKind::Table(t), _) => {
            if let Some(child) = t.get_mut(first) {
                let at = if at.is_empty() {
                    first.to_owned()
                } else {
                    format!("{at}.{first}")
                };
                resolve(child, rest, at, out);
            }
        }
        _ => {}
    }
}

/// `FIREWATCH__WEBHOOK__0__SECRET` → `webhook[0].secret`: environment keys into the arrays of
/// tables (`[[webhook]]`, `[[wecom]]`, `[[dingtalk]]`).
fn array_key(var: &str) -> Option<String> {
    let rest = var.strip_prefix("FIREWATCH__")?;
    let mut parts = rest.splitn(3, "__");
    let (table, index, key) = (parts.next()?, parts.next()?, parts.next()?);
    if !matches!(table, "WEBHOOK" | "WECOM" | "DINGTALK" | "NORTHBOUND")
        || index.parse::<usize>().is_err()
        || key.is_empty()
    {
        return None;
    }
    Some(format!(
        "{}[{index}].{}",
        table.to_lowercase(),
        key.to_lowercase().replace("__", ".")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn work_order_rules_keep_their_dotted_ids_and_bad_ones_are_reported_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("wo.toml");
        std::fs::write(
            &f,
            "[workorders]\nafter_s = 600\n[workorders.rules.\"water_pressure.low\"]\ndeadline_s = 7200\n\
             [workorders.rules.\"fire_lane.fire\"]\ndeadline_s = 3600\n",
        )
        .unwrap();
        let c = Config::load_from(Path::new("/nonexistent"), Some(&f), env(&[])).unwrap();
        assert_eq!(c.workorders.after_ms("water_pressure.low"), 600_000);
        assert_eq!(
            c.workorders.deadline_ms(Some("water_pressure.low")),
            7_200_000
        );
        assert_eq!(
            c.workorders.deadline_ms(Some("fire_lane.blocked")),
            3_600_000
        );
        let keys: Vec<String> = c.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["workorders.rules.\"fire_lane.fire\""]);
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::load_from(Path::new("/nonexistent"), None, env(&[])).unwrap();
        assert_eq!(c.mqtt.url, "embedded");
        assert_eq!(c.mqtt.embedded_listen, "127.0.0.1:1883");
        assert_eq!(c.mqtt.client_id, "firewatch");
        assert_eq!(c.http.listen, "127.0.0.1:8080");
        assert_eq!(c.storage.dir, PathBuf::from("data"));
        assert_eq!(c.storage.retention_days, 30);
        assert!(c.tsdb.url.is_none());
        assert!(c.email.smtp_url.is_none());
        assert_eq!(c.rules.file, PathBuf::from("config/rules.toml"));
        assert_eq!(c.registry.file, PathBuf::from("config/registry.toml"));
        assert_eq!(c.duty.file, PathBuf::from("config/duty.toml"));
        assert!(c.summary.enabled);
        assert_eq!(c.summary.at, "08:00");
        assert!(c.summary.channels.is_none());
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }

    #[test]
    fn summary_settings_come_from_files_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(
            &f,
            "[summary]\nat = \"07:30\"\nchannels = [\"email\", \"wecom\"]\n",
        )
        .unwrap();
        let c = Config::load_from(
            Path::new("/nonexistent"),
            Some(&f),
            env(&[("FIREWATCH__SUMMARY__ENABLED", "false")]),
        )
        .unwrap();
        assert!(!c.summary.enabled);
        assert_eq!(c.summary.at_minute(), 7 * 60 + 30);
        use crate::model::notification::ChannelKind;
        assert_eq!(
            c.summary.channels.as_deref(),
            Some(&[ChannelKind::Email, ChannelKind::Wecom][..])
        );
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        std::fs::write(&f, "[summary]\nchannels = [\"fax\"]\n").unwrap();
        let e = Config::load_from(Path::new("/nonexistent"), Some(&f), env(&[])).unwrap_err();
        assert!(e.key.starts_with("summary.channels"), "{e}");
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let default = dir.path().join("default.toml");
        std::fs::File::create(&default)
            .unwrap()
            .write_all(b"[http]\nlisten = \"127.0.0.1:9000\"\n[mqtt]\nclient_id = \"a\"\n")
            .unwrap();
        let file = dir.path().join("site.toml");
        std::fs::File::create(&file)
            .unwrap()
            .write_all(b"[mqtt]\nclient_id = \"b\"\nurl = \"mqtt://broker:1884\"\n")
            .unwrap();
        let c = Config::load_from(
            &default,
            Some(&file),
            env(&[
                ("FIREWATCH__MQTT__URL", "mqtts://broker"),
                ("FIREWATCH__EMAIL__TO", "a@x.org, b@x.org"),
                ("FIREWATCH__TSDB__TOKEN", "s3cret"),
            ]),
        )
        .unwrap();
        assert_eq!(c.http.listen, "127.0.0.1:9000");
        assert_eq!(c.mqtt.client_id, "b");
        assert_eq!(c.mqtt.url, "mqtts://broker");
        assert_eq!(c.email.to, vec!["a@x.org", "b@x.org"]);
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(c.notify.max_attempts, 20);
        assert_eq!(c.notify.backoff_max_s, 300);
        assert_eq!(
            parse_mqtt_url(&c.mqtt.url).unwrap(),
            MqttUrl {
                host: "broker".into(),
                port: 8883,
                tls: true
            }
        );
    }

    #[test]
    fn robots_and_sms_come_from_files_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("site.toml");
        std::fs::write(
            &file,
            "[notify]\nlang = \"en\"\ntz = \"Europe/Berlin\"\n\
             [[dingtalk]]\nname = \"estate\"\n\
             url = \"https://oapi.dingtalk.com/robot/send?access_token=t0k3n\"\n\
             at_mobiles = [\"13900000000\"]\n\
             [sms]\nurl = \"https://sms.example.org/send\"\n\
             body = '{\"to\": \"{phone}\", \"text\": \"{text}\"}'\n\
             headers = { Authorization = \"Bearer sm5s3cret\" }\n",
        )
        .unwrap();
        let c = Config::load_from(
            Path::new("/nonexistent"),
            Some(&file),
            env(&[
                ("FIREWATCH__WECOM__0__NAME", "duty"),
                (
                    "FIREWATCH__WECOM__0__URL",
                    "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k3y",
                ),
                ("FIREWATCH__DINGTALK__0__SECRET", "SECs3cret"),
                ("FIREWATCH__SMS__TO", "13800000000, 13700000000"),
            ]),
        )
        .unwrap();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.notify.lang, crate::notify::Lang::En);
        assert_eq!(c.wecom[0].name, "duty");
        assert_eq!(c.dingtalk[0].at_mobiles, ["13900000000"]);
        assert_eq!(
            c.dingtalk[0].secret.as_ref().map(Secret::expose),
            Some("SECs3cret")
        );
        let sms = c.sms.as_ref().unwrap();
        assert_eq!(sms.to, ["13800000000", "13700000000"]);
        assert_eq!(sms.method, "POST");
        let shown = format!("{c:?}");
        for secret in ["k3y", "t0k3n", "SECs3cret", "sm5s3cret"] {
            assert!(!shown.contains(secret), "{secret} printed");
        }
        assert_eq!(c.http.public_url(), "http://127.0.0.1:8080");
        // A zone that does not exist is a problem with its key.
        let c = Config::load_from(
            Path::new("/nonexistent"),
            None,
            env(&[("FIREWATCH__NOTIFY__TZ", "Mars/Olympus")]),
        )
        .unwrap();
        let keys: Vec<String> = c.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["notify.tz"]);
    }

    #[test]
    fn webhook_secrets_come_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("site.toml");
        std::fs::write(
            &file,
            "[[webhook]]\nname = \"ops\"\nurl = \"https://hooks.example.org/fw\"\n\
             [[webhook]]\nname = \"bms\"\nurl = \"http://10.0.0.9/in\"\nsecret = \"x\"\n",
        )
        .unwrap();
        let c = Config::load_from(
            Path::new("/nonexistent"),
            Some(&file),
            env(&[
                ("FIREWATCH__WEBHOOK__0__SECRET", "h00ks3cret"),
                ("FIREWATCH__WEBHOOK__1__TIMEOUT_S", "2.5"),
                ("FIREWATCH__NOTIFY__MAX_ATTEMPTS", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(c.webhook.len(), 2);
        assert_eq!(c.webhook[0].name, "ops");
        assert_eq!(c.webhook[0].secret.expose(), "h00ks3cret");
        assert_eq!(c.webhook[1].timeout_s, Some(2.5));
        assert_eq!(c.notify.max_attempts, 3);
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert!(!format!("{c:?}").contains("h00ks3cret"));
        // A webhook from the environment alone.
        let c = Config::load_from(
            Path::new("/nonexistent"),
            None,
            env(&[
                ("FIREWATCH__WEBHOOK__0__NAME", "ops"),
                ("FIREWATCH__WEBHOOK__0__URL", "http://127.0.0.1:9/x"),
                ("FIREWATCH__WEBHOOK__0__SECRET", "s"),
            ]),
        )
        .unwrap();
        assert_eq!(c.webhook[0].url, "http://127.0.0.1:9/x");
    }

    #[test]
    fn secrets_come_from_files_named_by_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let put = |name: &str, text: &str| {
            let f = dir.path().join(name);
            std::fs::write(&f, text).unwrap();
            f.display().to_string()
        };
        let mqtt = put("mqtt_password", "mq-pa55\n");
        let hook = put("hook", "h00k\n\n");
        let header = put("header", "Bearer n0rth");
        let sms = put("sms_header", "Bearer sm5\r\n");
        let ack = put("ack", "0123456789abcdef-ack");
        let file = dir.path().join("site.toml");
        std::fs::write(
            &file,
            format!(
                "[http]\nack_token_file = \"{ack}\"\n\
                 [[webhook]]\nname = \"ops\"\nurl = \"http://127.0.0.1:9/x\"\n\
                 [[northbound]]\nname = \"city\"\nurl = \"http://127.0.0.1:9/nb\"\n\
                 headers = {{ Authorization_file = \"{header}\" }}\n\
                 [sms]\nurl = \"https://sms.example.org/send\"\n\
                 body = \"{{text}}\"\nheaders = {{ Authorization_file = \"{sms}\" }}\n"
            ),
        )
        .unwrap();
        let c = Config::load_from(
            Path::new("/nonexistent"),
            Some(&file),
            env(&[
                ("FIREWATCH__MQTT__PASSWORD_FILE", mqtt.as_str()),
                ("FIREWATCH__WEBHOOK__0__SECRET_FILE", hook.as_str()),
                ("FIREWATCH__TSDB__TOKEN", "from-env"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.mqtt.password.as_ref().map(Secret::expose),
            Some("mq-pa55")
        );
        // One trailing newline is stripped, no more.
        assert_eq!(c.webhook[0].secret.expose(), "h00k\n");
        assert_eq!(c.tsdb.token.as_ref().map(Secret::expose), Some("from-env"));
        assert_eq!(
            c.http.ack_token.as_ref().map(Secret::expose),
            Some("0123456789abcdef-ack")
        );
        let nb: Vec<&str> = c.northbound[0]
            .headers
            .values()
            .map(Secret::expose)
            .collect();
        assert_eq!(nb, ["Bearer n0rth"]);
        let sms_h: Vec<&str> = c
            .sms
            .as_ref()
            .unwrap()
            .headers
            .values()
            .map(Secret::expose)
            .collect();
        assert_eq!(sms_h, ["Bearer sm5"]);
    }

    #[test]
    fn a_secret_file_that_cannot_be_read_or_a_secret_set_twice_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope").display().to_string();
        let e = Config::load_from(
            Path::new("/nonexistent"),
            None,
            env(&[("FIREWATCH__MQTT__PASSWORD_FILE", missing.as_str())]),
        )
        .unwrap_err();
        assert_eq!(e.key, "mqtt.password_file", "{e}");
        assert!(e.message.contains(&missing), "{e}");
        let f = dir.path().join("token");
        std::fs::write(&f, "t0p-s3cret-value").unwrap();
        let e = Config::load_from(
            Path::new("/nonexistent"),
            None,
            env(&[
                (
                    "FIREWATCH__DINGTALK__0__URL",
                    "https://oapi.dingtalk.com/robot/send",
                ),
                ("FIREWATCH__DINGTALK__0__SECRET", "inline"),
                ("FIREWATCH__DINGTALK__0__SECRET_FILE", f.to_str().unwrap()),
            ]),
        )
        .unwrap_err();
        assert_eq!(e.key, "dingtalk[0].secret", "{e}");
        assert!(e.message.contains("dingtalk[0].secret_file"), "{e}");
        assert!(!e.to_string().contains("t0p-s3cret-value"), "{e}");
        // `_file` of a key that is not a secret is still an unknown key.
        let e = Config::load_from(
            Path::new("/nonexistent"),
            None,
            env(&[("FIREWATCH__MQTT__URL_FILE", f.to_str().unwrap())]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("url_file"), "{e}");
    }

    #[test]
    fn type_errors_name_their_key() {
        let e = Config::load_from(
            Path::new("/nonexistent"),
            None,
            env(&[("FIREWATCH__STORAGE__RETENTION_DAYS", "many")]),
        )
        .unwrap_err();
        assert_eq!(e.key, "storage.retention_days", "{e}");
    }

    #[test]
    fn validate_reports_every_problem() {
        let mut c = Config::default();
        c.mqtt.url = "http://x".into();
        c.http.listen = "nowhere".into();
        c.email.to = vec!["not an address".into()];
        c.tsdb.url = Some("ftp://x".into());
        c.storage.synchronous = "sometimes".into();
        c.notify.max_attempts = 0;
        c.webhook = vec![WebhookConfig {
            name: "ops".into(),
            url: "nowhere".into(),
            secret: Secret::new("s"),
            timeout_s: None,
        }];
        let keys: Vec<String> = c.validate().into_iter().map(|p| p.key).collect();
        for k in [
            "mqtt.url",
            "http.listen",
            "email.to[0]",
            "tsdb.url",
            "storage.synchronous",
            "notify.max_attempts",
            "webhook[0].url",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
    }
}
