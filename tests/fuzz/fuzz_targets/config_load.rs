//! The configuration loader and the rule, registry and duty-roster file parsers on arbitrary
//! text: nothing panics, and a refusal names at least one problem.
//!
//! The input is written as the `--config` file (a fixed path in the temporary directory, one per
//! process) and loaded over the built-in defaults without `config/default.toml` and without
//! environment variables; a configuration that loads is validated. The same text is then parsed
//! as a rule file, a registry and a duty roster.
#![no_main]

use firewatch::config::Config;
use firewatch::duty::Roster;
use firewatch::registry::Registry;
use firewatch::rules::Rules;
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// This process's configuration file.
fn file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        std::env::temp_dir().join(format!("firewatch-fuzz-config-{}.toml", std::process::id()))
    })
}

/// A default file that does not exist: only the input is layered over the built-in defaults.
const NO_DEFAULT_FILE: &str = "/nonexistent/firewatch-fuzz/default.toml";

fuzz_target!(|data: &[u8]| {
    std::fs::write(file(), data).expect("the temporary directory is writable");
    if let Ok(c) = Config::load_from(Path::new(NO_DEFAULT_FILE), Some(file()), Vec::new()) {
        let _ = c.validate();
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(p) = Rules::parse(text) {
        assert!(!p.is_empty(), "rules refused without a problem");
    }
    if let Err(p) = Registry::parse(text) {
        assert!(!p.is_empty(), "registry refused without a problem");
    }
    if let Err(p) = Roster::parse(text) {
        assert!(!p.is_empty(), "roster refused without a problem");
    }
});
