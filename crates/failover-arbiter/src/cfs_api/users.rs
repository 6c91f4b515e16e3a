//! Who may call the vendor's REST API: HTTP basic authentication with the vendor's two roles.
//! Members (the vendor's AVEVAFailoverUsers, the accounts adapters run as) read groups and
//! sessions, create groups and sessions, delete sessions and post heartbeats; administrators
//! (AVEVAFailoverAdministrators) may also delete groups, set role overrides and change the
//! service's configuration (log level). An administrator may do all a member may.
//!
//! The accounts come from a JSON file (`--cfs-users FILE`):
//! `{"members": [{"username": "adapter", "password": "..."}], "administrators": [...]}`.
//! With no file, the API takes every request (as the demo does). Passwords are compared in time
//! independent of where they differ and never logged.

use std::path::Path;

use anyhow::Context;
use failover_proto::auth::{basic_header, same_secret};
use serde::Deserialize;

/// A caller's rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rights {
    /// Heartbeats, reads, creating groups and sessions, deleting sessions.
    Member,
    /// All of a member's, and deleting groups, overrides, configuration.
    Administrator,
}

impl Rights {
    /// The vendor's name of the Windows group that grants these rights.
    pub fn vendor_group(self) -> &'static str {
        match self {
            Rights::Member => "AVEVAFailoverUsers",
            Rights::Administrator => "AVEVAFailoverAdministrators",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Account {
    username: String,
    password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    members: Vec<Account>,
    #[serde(default)]
    administrators: Vec<Account>,
}

/// The accounts the API takes (none: every request is taken).
#[derive(Default)]
pub struct Users {
    /// Expected `Authorization` values and the rights each grants.
    accounts: Vec<(String, String, Rights)>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        f.debug_struct("Users")
            .field(
                "usernames",
                &self
                    .accounts
                    .iter()
                    .map(|(u, _, r)| (u, r))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Why a request was not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials, wrong ones, or another scheme: 401.
    Unauthenticated(String),
    /// Known, but a member calling an administrator's call: 403.
    Forbidden(String),
}

impl Users {
    /// No accounts: every request is taken.
    pub fn open() -> Self {
        Users::default()
    }

    /// The accounts of a users file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the users file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("users file {}", path.display()))
    }

    /// The accounts of a users file's text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: UsersFile = serde_json::from_str(text.trim_start_matches('\u{feff}')).context(
            "expected {\"members\": [{\"username\": ..., \"password\": ...}], \"administrators\": [...]}",
        )?;
        let mut accounts = Vec::new();
        for (list, rights) in [
            (file.members, Rights::Member),
            (file.administrators, Rights::Administrator),
        ] {
            for a in list {
                if a.username.is_empty() || a.username.contains(':') {
                    anyhow::bail!(
                        "username {:?} must be non-empty and hold no ':' (basic authentication splits at the first one)",
                        a.username
                    );
                }
                if a.password.is_empty() {
                    anyhow::bail!("the password of {:?} is empty", a.username);
                }
                if accounts.iter().any(|(u, _, _)| *u == a.username) {
                    anyhow::bail!(
                        "{:?} is listed twice; list an administrator once (administrators may do all members may)",
                        a.username
                    );
                }
                let header = basic_header(&a.username, &a.password);
                accounts.push((a.username, header, rights));
            }
        }
        if accounts.is_empty() {
            anyhow::bail!(
                "the users file lists nobody; leave --cfs-users out to take every request"
            );
        }
        Ok(Users { accounts })
    }

    /// True when requests need credentials.
    pub fn required(&self) -> bool {
        !self.accounts.is_empty()
    }

    /// Lets in a request with this `Authorization` header, if it has `needed` rights.
    pub fn admit(&self, presented: Option<&str>, needed: Rights) -> Result<(), Refusal> {
        if self.accounts.is_empty() {
            return Ok(());
        }
        let Some(presented) = presented else {
            return Err(Refusal::Unauthenticated(
                "this failover service requires basic authentication (curl -u username:password)"
                    .into(),
            ));
        };
        if !presented.starts_with("Basic ") {
            return Err(Refusal::Unauthenticated(
                "only basic authentication is taken here (Authorization: Basic ...)".into(),
            ));
        }
        // Every account is compared, so the time taken says nothing about which matched.
        let mut found = None;
        for (username, expected, rights) in &self.accounts {
            if same_secret(presented, expected) {
                found = Some((username, *rights));
            }
        }
        match found {
            None => Err(Refusal::Unauthenticated(
                "wrong username or password".into(),
            )),
            Some((_, rights)) if rights >= needed => Ok(()),
            Some((username, _)) => Err(Refusal::Forbidden(format!(
                "{username} is a member ({}); this call needs an administrator ({})",
                Rights::Member.vendor_group(),
                needed.vendor_group()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_administrators() {
        let users = Users::parse(
            r#"{"members":[{"username":"adapter","password":"a-secret"}],
                "administrators":[{"username":"admin","password":"b-secret"}]}"#,
        )
        .expect("users");
        let member = basic_header("adapter", "a-secret");
        let admin = basic_header("admin", "b-secret");
        assert_eq!(users.admit(Some(&member), Rights::Member), Ok(()));
        assert!(matches!(
            users.admit(Some(&member), Rights::Administrator),
            Err(Refusal::Forbidden(_))
        ));
        assert_eq!(users.admit(Some(&admin), Rights::Administrator), Ok(()));
        assert_eq!(users.admit(Some(&admin), Rights::Member), Ok(()));
        assert!(matches!(
            users.admit(None, Rights::Member),
            Err(Refusal::Unauthenticated(_))
        ));
        assert!(matches!(
            users.admit(Some(&basic_header("adapter", "wrong")), Rights::Member),
            Err(Refusal::Unauthenticated(_))
        ));
        assert!(!format!("{users:?}").contains("secret"));
        assert!(Users::open().admit(None, Rights::Administrator).is_ok());
        assert!(Users::parse(r#"{"members":[]}"#).is_err());
        assert!(Users::parse(r#"{"members":[{"username":"a:b","password":"x"}]}"#).is_err());
        assert!(Users::parse(r#"{"member":[]}"#).is_err());
    }
}
