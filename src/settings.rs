//! The vocabulary every stage's settings share: [`Secret`] values that never print, and the
//! [`Problem`] a validation reports with its key path.

use serde::Deserialize;
use std::fmt;

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

    /// The same problem under a parent key: `prefix: key`.
    pub fn under(self, prefix: &str) -> Self {
        Problem {
            key: format!("{prefix}: {}", self.key),
            message: self.message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// A TOML parse error as a problem, with the byte offset it is at.
pub fn toml_problem(e: &toml::de::Error) -> Problem {
    Problem::new(
        "toml",
        e.message().to_owned()
            + &e.span()
                .map(|s| format!(" (at byte {})", s.start))
                .unwrap_or_default(),
    )
}

/// Reads the file of a configuration `key` (e.g. `rules.file`) and parses it with `parse`; the
/// problems are reported under `key`.
pub fn load_file<T>(
    path: &std::path::Path,
    key: &str,
    parse: impl FnOnce(&str) -> Result<T, Vec<Problem>>,
) -> Result<T, Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem::new(
            key,
            format!("cannot read {}: {e}", path.display()),
        )]
    })?;
    parse(&text).map_err(|ps| ps.into_iter().map(|p| p.under(key)).collect())
}
