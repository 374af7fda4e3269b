//! Configuration (contract section 6): built-in defaults → `config/default.toml` → `--config FILE`
//! → `FIREWATCH__{SECTION}__{KEY}` environment variables. [`Config::load`] layers them;
//! [`Config::validate`] reports every problem with its key path.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A secret string: never printed by `Debug` or `Display`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// MQTT broker connection.
    pub mqtt: MqttConfig,
    /// HTTP API and dashboard.
    pub http: HttpConfig,
    /// Embedded store, spool and outbox.
    pub storage: StorageConfig,
    /// InfluxDB v2 write API.
    pub tsdb: TsdbConfig,
    /// E-mail notifications.
    pub email: EmailConfig,
    /// Rule file.
    pub rules: RulesConfig,
    /// Device registry file.
    pub registry: RegistryConfig,
}

/// `[mqtt]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `embedded` starts the built-in broker; otherwise `mqtt://host:port` or `mqtts://host:port`.
    pub url: String,
    /// Listen address of the built-in broker.
    pub embedded_listen: String,
    /// Fixed client id, so the broker keeps the session across restarts.
    pub client_id: String,
    /// Broker user name.
    pub username: Option<String>,
    /// Broker password.
    pub password: Option<Secret>,
    /// MQTT keep-alive in seconds.
    pub keep_alive_s: u64,
    /// Longest wait between reconnect attempts, seconds (the backoff doubles up to it).
    pub reconnect_max_s: u64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: "embedded".into(),
            embedded_listen: "127.0.0.1:1883".into(),
            client_id: "firewatch".into(),
            username: None,
            password: None,
            keep_alive_s: 30,
            reconnect_max_s: 30,
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// API and dashboard listen address.
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
        }
    }
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory of the embedded store and the outbox.
    pub dir: PathBuf,
    /// Days of readings kept in the embedded store.
    pub retention_days: u32,
    /// Rejected messages kept for `GET /api/v1/rejected`.
    pub rejected_keep: u32,
    /// SQLite `synchronous`: `full` survives power loss, `normal` survives process crashes.
    pub synchronous: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: PathBuf::from("data"),
            retention_days: 30,
            rejected_keep: 10_000,
            synchronous: "full".into(),
        }
    }
}

/// `[tsdb]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TsdbConfig {
    /// InfluxDB v2 base URL; unset: only the embedded store is written.
    pub url: Option<String>,
    /// Organisation.
    pub org: String,
    /// Bucket.
    pub bucket: String,
    /// API token.
    pub token: Option<Secret>,
    /// Points per write.
    pub batch_size: usize,
    /// Longest wait before a partial batch is written, milliseconds.
    pub flush_interval_ms: u64,
}

impl Default for TsdbConfig {
    fn default() -> Self {
        TsdbConfig {
            url: None,
            org: "firewatch".into(),
            bucket: "firewatch".into(),
            token: None,
            batch_size: 5000,
            flush_interval_ms: 1000,
        }
    }
}

/// `[email]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// `smtp://host:port`, `smtps://user:pass@host`; unset: `.eml` files in `{storage.dir}/outbox`.
    pub smtp_url: Option<Secret>,
    /// Sender.
    pub from: String,
    /// Default recipients: an array, or one comma-separated string.
    #[serde(deserialize_with = "one_or_many")]
    pub to: Vec<String>,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            smtp_url: None,
            from: "firewatch <firewatch@localhost>".into(),
            to: vec!["duty@localhost".into()],
        }
    }
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
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            file: PathBuf::from("config/registry.toml"),
        }
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

/// One configuration problem, with the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `mqtt.url` or `rules.file: threshold[0].raise`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// Builds a problem.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
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
        let vars: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("FIREWATCH__"))
            .collect();
        b = b.add_source(
            config::Environment::with_prefix("FIREWATCH")
                .prefix_separator("__")
                .separator("__")
                .source(Some(vars)),
        );
        let built = b
            .build()
            .map_err(|e| Problem::new("config", e.to_string()))?;
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
        let mut p = Vec::new();
        if self.mqtt.url == "embedded" {
            if self.mqtt.embedded_listen.parse::<SocketAddr>().is_err() {
                p.push(Problem::new(
                    "mqtt.embedded_listen",
                    format!("{:?} is not host:port", self.mqtt.embedded_listen),
                ));
            }
        } else if let Err(e) = parse_mqtt_url(&self.mqtt.url) {
            p.push(Problem::new("mqtt.url", e));
        }
        if !crate::model::valid_id(&self.mqtt.client_id) {
            p.push(Problem::new(
                "mqtt.client_id",
                "must be 1–64 characters of A-Z a-z 0-9 _ -",
            ));
        }
        if self.mqtt.password.is_some() && self.mqtt.username.is_none() {
            p.push(Problem::new(
                "mqtt.username",
                "mqtt.password is set but mqtt.username is not",
            ));
        }
        if self.mqtt.keep_alive_s < 5 {
            p.push(Problem::new("mqtt.keep_alive_s", "must be at least 5"));
        }
        if self.http.listen.parse::<SocketAddr>().is_err() {
            p.push(Problem::new(
                "http.listen",
                format!("{:?} is not host:port", self.http.listen),
            ));
        }
        if self.storage.retention_days == 0 {
            p.push(Problem::new("storage.retention_days", "must be at least 1"));
        }
        if !matches!(self.storage.synchronous.as_str(), "full" | "normal") {
            p.push(Problem::new(
                "storage.synchronous",
                "must be \"full\" or \"normal\"",
            ));
        }
        if let Some(url) = &self.tsdb.url {
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => p.push(Problem::new(
                    "tsdb.url",
                    format!("{url:?} is not an http:// or https:// URL"),
                )),
            }
            if self.tsdb.org.is_empty() {
                p.push(Problem::new("tsdb.org", "must be set when tsdb.url is set"));
            }
            if self.tsdb.bucket.is_empty() {
                p.push(Problem::new(
                    "tsdb.bucket",
                    "must be set when tsdb.url is set",
                ));
            }
        }
        if self.tsdb.batch_size == 0 {
            p.push(Problem::new("tsdb.batch_size", "must be at least 1"));
        }
        if let Some(url) = &self.email.smtp_url {
            if let Err(e) = crate::notify::SmtpTarget::parse(url.expose()) {
                p.push(Problem::new("email.smtp_url", e));
            }
        }
        if self.email.from.parse::<lettre::message::Mailbox>().is_err() {
            p.push(Problem::new(
                "email.from",
                format!("{:?} is not an e-mail address", self.email.from),
            ));
        }
        if self.email.to.is_empty() {
            p.push(Problem::new("email.to", "needs at least one address"));
        }
        for (i, to) in self.email.to.iter().enumerate() {
            if to.parse::<lettre::message::Mailbox>().is_err() {
                p.push(Problem::new(
                    format!("email.to[{i}]"),
                    format!("{to:?} is not an e-mail address"),
                ));
            }
        }
        p
    }
}

/// A parsed external broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttUrl {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS (`mqtts://`).
    pub tls: bool,
}

/// Parses `mqtt://host:port` or `mqtts://host:port`.
pub fn parse_mqtt_url(s: &str) -> Result<MqttUrl, String> {
    let u = url::Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    let tls = match u.scheme() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        other => {
            return Err(format!(
                "scheme {other:?} is not mqtt:// or mqtts:// (or \"embedded\")"
            ))
        }
    };
    let host = u
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{s:?} has no host"))?
        .trim_matches(|c| c == '[' || c == ']')
        .to_owned();
    let port = u.port().unwrap_or(if tls { 8883 } else { 1883 });
    Ok(MqttUrl { host, port, tls })
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
        assert!(c.validate().is_empty(), "{:?}", c.validate());
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
        let keys: Vec<String> = c.validate().into_iter().map(|p| p.key).collect();
        for k in [
            "mqtt.url",
            "http.listen",
            "email.to[0]",
            "tsdb.url",
            "storage.synchronous",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
    }
}
