//! Where the CLI reads passwords from — never the command line, which
//! every user of the machine can read in the process list: standard input
//! (`--password-stdin`, one per line), an environment variable, or a
//! prompt that does not echo when standard input is a terminal.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};

/// Reads passwords from one of the three places, in order.
#[derive(Debug)]
pub struct SecretInput {
    from_stdin: bool,
}

impl SecretInput {
    pub fn new(from_stdin: bool) -> SecretInput {
        SecretInput { from_stdin }
    }

    /// The next password: a line of standard input with `--password-stdin`,
    /// else `$env` when set, else a prompt with `prompt`.
    pub fn read(&self, prompt: &str, env: &str) -> anyhow::Result<String> {
        if self.from_stdin {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("cannot read a password from standard input")?;
            let password = line.trim_end_matches(['\n', '\r']).to_owned();
            if password.is_empty() {
                bail!("standard input ended before the {prompt}: give one per line with --password-stdin");
            }
            return Ok(password);
        }
        if let Ok(password) = std::env::var(env)
            && !password.is_empty()
        {
            return Ok(password);
        }
        if !std::io::stdin().is_terminal() {
            bail!("no {prompt}: pipe it in with --password-stdin, set {env}, or run in a terminal to be asked");
        }
        rpassword::prompt_password(format!("{prompt}: ")).context("cannot read the password at the prompt")
    }

    /// A new password: asked twice at a prompt (read once elsewhere).
    pub fn read_new(&self, prompt: &str, env: &str) -> anyhow::Result<String> {
        let password = self.read(prompt, env)?;
        let prompted = !self.from_stdin && std::env::var(env).map_or(true, |p| p.is_empty());
        if prompted && self.read(&format!("{prompt} again"), env)? != password {
            bail!("the two new passwords differ");
        }
        Ok(password)
    }
}
