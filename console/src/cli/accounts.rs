//! `sluice password` (change your own) and `sluice user …` (a global
//! admin's: list, create, set a password, disable, enable, revoke).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::json;

use super::client::{Console, Target};
use super::secret_input::SecretInput;

#[derive(Debug, Args)]
pub struct PasswordArgs {
    #[command(flatten)]
    pub target: Target,
    /// Read the current and the new password from standard input, one per
    /// line; without it: $SLUICE_PASSWORD and $SLUICE_NEW_PASSWORD, else
    /// prompts.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Every user, with whether it is a global admin or disabled.
    List,
    /// A new user; the password from --password-stdin, $SLUICE_NEW_PASSWORD or a prompt.
    Create {
        name: String,
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password (ends its browser sessions, lifts a sign-in lock).
    SetPassword {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// A disabled user cannot sign in; its sessions and tokens end.
    Disable {
        name: String,
    },
    Enable {
        name: String,
    },
    /// End every session and API token of the user.
    Revoke {
        name: String,
    },
}

pub async fn password(args: PasswordArgs) -> anyhow::Result<ExitCode> {
    let console = Console::new(&args.target)?;
    let input = SecretInput::new(args.password_stdin);
    let old = input.read("current password", "SLUICE_PASSWORD")?;
    let new = input.read_new("new password", "SLUICE_NEW_PASSWORD")?;
    console.call(Method::POST, "/me/password", Some(json!({ "old_password": old, "new_password": new }))).await?;
    println!("password changed; your other browser sessions are signed out");
    Ok(ExitCode::SUCCESS)
}

pub async fn user(args: UserArgs) -> anyhow::Result<ExitCode> {
    let console = Console::new(&args.target)?;
    match args.command {
        UserCommand::List => {
            let users = console.call(Method::GET, "/users", None).await?;
            for u in users.as_array().into_iter().flatten() {
                let mut notes = Vec::new();
                if u["is_admin"] == true {
                    notes.push("global admin");
                }
                if u["disabled"] == true {
                    notes.push("disabled");
                }
                println!("{:<24} {}", u["name"].as_str().unwrap_or(""), notes.join(", "));
            }
        }
        UserCommand::Create { name, admin, password_stdin } => {
            let password = SecretInput::new(password_stdin).read_new("password", "SLUICE_NEW_PASSWORD")?;
            let body = json!({ "name": name, "password": password, "is_admin": admin });
            console.call(Method::POST, "/users", Some(body)).await?;
            println!("user {name} created");
        }
        UserCommand::SetPassword { name, password_stdin } => {
            let password = SecretInput::new(password_stdin).read_new("new password", "SLUICE_NEW_PASSWORD")?;
            console
                .call(Method::PUT, &format!("/users/{name}/password"), Some(json!({ "password": password })))
                .await?;
            println!("password of {name} set; its browser sessions are signed out");
        }
        UserCommand::Disable { name } => {
            console.call(Method::PATCH, &format!("/users/{name}"), Some(json!({ "disabled": true }))).await?;
            println!("user {name} disabled; its sessions and tokens no longer work");
        }
        UserCommand::Enable { name } => {
            console.call(Method::PATCH, &format!("/users/{name}"), Some(json!({ "disabled": false }))).await?;
            println!("user {name} enabled");
        }
        UserCommand::Revoke { name } => {
            let ended = console.call(Method::DELETE, &format!("/users/{name}/credentials"), None).await?;
            println!("{} session(s) and token(s) of {name} ended", ended["ended"]);
        }
    }
    Ok(ExitCode::SUCCESS)
}
