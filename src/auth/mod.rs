//! Who may do what: accounts, roles, building scope, password hashing, tokens and the login
//! rate limit. Pure except for the operating system's random numbers ([`token::generate`],
//! [`password::hash`]); the rows live in `store::auth`, the HTTP side in `api/`.
//!
//! Roles (contract section 7):
//! - `operator`: control-room staff; read everything, handle alerts, work orders and duty
//!   checks;
//! - `manager`: a building's fire-safety manager; read the health, reports and work orders of
//!   their own buildings and report rectification, nothing of other buildings;
//! - `admin`: everything, plus configuration, users, tokens and silences.
//!
//! A [`Principal`] is who a request acts as: a user through a session, an API token (which acts
//! as the user who made it, with that user's role and scope) or `auth.bootstrap_token` (an
//! admin without a user row, `by` = `bootstrap`).

pub mod limit;
pub mod mosquitto;
pub mod password;
pub mod token;

use crate::settings::{Problem, Secret};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The file the first admin's password is written to, in `storage.dir` (removed by
/// `firewatch user passwd admin`).
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Accepted as an admin API token (automation, first start); unset: none.
    pub bootstrap_token: Option<Secret>,
    /// Hours a dashboard session lasts after its login.
    pub session_hours: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            bootstrap_token: None,
            session_hours: 12,
        }
    }
}

impl AuthConfig {
    /// Every problem of the `[auth]` settings.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self
            .bootstrap_token
            .as_ref()
            .is_some_and(|t| t.expose().trim().len() < 16)
        {
            p.push(Problem::new(
                "auth.bootstrap_token",
                "too short: use at least 16 characters (e.g. `openssl rand -hex 16`)",
            ));
        }
        if !(1..=24 * 31).contains(&self.session_hours) {
            p.push(Problem::new(
                "auth.session_hours",
                "must be between 1 and 744 (31 days)",
            ));
        }
        p
    }

    /// How long a session lasts, ms.
    pub fn session_ms(&self) -> i64 {
        i64::from(self.session_hours) * 3_600_000
    }
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Control-room operator.
    Operator,
    /// Fire-safety manager of some buildings.
    Manager,
    /// Administrator.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Operator, Role::Manager, Role::Admin];

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do `what` (building scope is checked apart, [`Scope::allows`]).
    pub fn may(self, what: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Operator => matches!(
                what,
                Read | HandleAlerts | HandleWorkorders | ReportRectification | DutyChecks
            ),
            Role::Manager => matches!(what, Read | ReportRectification),
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?} (expected operator, manager or admin)"))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read alerts, devices, readings, reports, the duty roster (within the scope).
    Read,
    /// Acknowledge, annotate, verify, classify and close alerts.
    HandleAlerts,
    /// Create, assign and close hazard work orders.
    HandleWorkorders,
    /// Report a work order's rectification (整改完成).
    ReportRectification,
    /// Send duty checks, swap and grant leave on the roster.
    DutyChecks,
    /// Configuration, registry reloads, users, tokens, silences, summaries on demand.
    Admin,
}

/// Which buildings a principal sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every building (operators and admins).
    All,
    /// Only these buildings (managers).
    Buildings(BTreeSet<String>),
}

impl Scope {
    /// Whether a building is inside the scope.
    pub fn allows(&self, building: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Buildings(b) => b.contains(building),
        }
    }

    /// The buildings, or `None` for all.
    pub fn buildings(&self) -> Option<&BTreeSet<String>> {
        match self {
            Scope::All => None,
            Scope::Buildings(b) => Some(b),
        }
    }
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user name, recorded as `by` of every action (`bootstrap` for the bootstrap token).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its buildings.
    pub scope: Scope,
    /// How it was authenticated.
    pub via: Via,
}

/// How a principal was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A dashboard session (cookie): form posts need the CSRF token.
    Session,
    /// An API token (`Authorization: Bearer`).
    Token,
    /// `auth.bootstrap_token`.
    Bootstrap,
}

impl Principal {
    /// The principal of `auth.bootstrap_token`.
    pub fn bootstrap() -> Self {
        Principal {
            name: "bootstrap".to_owned(),
            role: Role::Admin,
            scope: Scope::All,
            via: Via::Bootstrap,
        }
    }

    /// Whether it may do `what` in `building` (`None`: not about one building).
    pub fn may(&self, what: Permission, building: Option<&str>) -> bool {
        self.role.may(what) && building.is_none_or(|b| self.scope.allows(b))
    }
}

/// A user as stored (`store::auth`), without the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Login name: 1–64 characters of letters, digits, `.`, `_`, `-`, `@`.
    pub name: String,
    /// Display name (a person's name, e.g. 张伟).
    pub display: String,
    /// Role.
    pub role: Role,
    /// Buildings of a manager (empty for the other roles, who see all).
    pub buildings: BTreeSet<String>,
    /// Disabled users cannot log in, and their sessions and tokens stop working.
    pub disabled: bool,
    /// Created, ms since the epoch.
    pub created_at: i64,
}

impl User {
    /// The scope its role and buildings give.
    pub fn scope(&self) -> Scope {
        match self.role {
            Role::Manager => Scope::Buildings(self.buildings.clone()),
            Role::Operator | Role::Admin => Scope::All,
        }
    }

    /// The principal it acts as.
    pub fn principal(&self, via: Via) -> Principal {
        Principal {
            name: self.name.clone(),
            role: self.role,
            scope: self.scope(),
            via,
        }
    }
}

/// Checks a login name.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    if name.is_empty() || name.chars().count() > 64 {
        return Err("a user name has 1 to 64 characters".to_owned());
    }
    if !name.chars().all(ok_char) {
        return Err(format!(
            "user name {name:?}: only letters, digits, '.', '_', '-' and '@' are allowed"
        ));
    }
    if name == "bootstrap" {
        return Err("the user name \"bootstrap\" is reserved for auth.bootstrap_token".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_the_contract_says() {
        use Permission::*;
        let all = [
            Read,
            HandleAlerts,
            HandleWorkorders,
            ReportRectification,
            DutyChecks,
            Admin,
        ];
        let granted = |r: Role| all.into_iter().filter(|p| r.may(*p)).collect::<Vec<_>>();
        assert_eq!(granted(Role::Admin), all);
        assert_eq!(
            granted(Role::Operator),
            [
                Read,
                HandleAlerts,
                HandleWorkorders,
                ReportRectification,
                DutyChecks
            ]
        );
        assert_eq!(granted(Role::Manager), [Read, ReportRectification]);
    }

    #[test]
    fn a_manager_is_held_to_their_buildings() {
        let u = User {
            name: "wang".into(),
            display: "王芳".into(),
            role: Role::Manager,
            buildings: ["b-001".to_owned()].into(),
            disabled: false,
            created_at: 0,
        };
        let p = u.principal(Via::Session);
        assert!(p.may(Permission::Read, Some("b-001")));
        assert!(!p.may(Permission::Read, Some("b-002")));
        assert!(p.may(Permission::ReportRectification, Some("b-001")));
        assert!(!p.may(Permission::HandleAlerts, Some("b-001")));
        // An operator with buildings listed still sees all: scope follows the role.
        let op = User {
            role: Role::Operator,
            ..u
        };
        assert!(op
            .principal(Via::Token)
            .may(Permission::Read, Some("b-002")));
        assert!(Principal::bootstrap().may(Permission::Admin, Some("any")));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("zhang.wei@room-1").is_ok());
        assert!(check_name("张伟").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        assert!(check_name("bootstrap").is_err());
        assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
        assert!("root".parse::<Role>().is_err());
    }
}
