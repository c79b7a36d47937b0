//! Access control: users with argon2-hashed passwords, browser sessions
//! (a cookie) and API tokens (a bearer header), and roles per project.
//!
//! Roles are ordered — viewer < developer < operator < admin — and each
//! includes the ones below it: a viewer reads; a developer creates jobs,
//! uploads versions, debugs and edits a deployment's version, spec and
//! parameters; an operator starts, stops, snapshots, restores, schedules
//! and sets a deployment's resources (parallelism, memory, CPU); a project
//! admin manages members and connections. A global admin (`is_admin`) may
//! do anything, creates projects and users.

mod extract;
mod passwords;
mod secrets;
mod throttle;

pub use extract::{ClientAddress, CurrentUser, SESSION_COOKIE};
pub use passwords::Passwords;
pub use secrets::{hash_password, hash_secret, new_secret, verify_password};
pub use throttle::{LOCK_AFTER_FAILURES, LoginThrottle};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Developer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "developer" => Role::Developer,
            "operator" => Role::Operator,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

/// How long a browser session lasts.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
