//! The admin subcommands (`mgw account|number|logon|profile|licence|registrations|cdrs`)
//! against a real `mgw serve`: what an operator types and what they read back.

mod common;

use common::phone::Phone;
use common::{free_port, Server, MGW};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};

struct Cli {
    api: String,
}

impl Cli {
    fn new(server: &Server) -> Cli {
        Cli {
            api: format!("http://127.0.0.1:{}", server.admin),
        }
    }

    /// Runs `mgw ARGS --api URL --token t` with no MGW_API/MGW_TOKEN from the environment.
    fn run(&self, args: &[&str]) -> Output {
        self.run_with_token(args, "t")
    }

    fn run_with_token(&self, args: &[&str], token: &str) -> Output {
        Command::new(MGW)
            .args(args)
            .args(["--api", &self.api, "--token", token])
            .env_remove("MGW_API")
            .env_remove("MGW_TOKEN")
            .output()
            .expect("run mgw")
    }

    /// Runs and expects success; stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "mgw {args:?} failed ({:?}):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Runs and expects exit status 1; stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        failed(args, &out)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("mgw {args:?} --json: {e}: {out}"))
    }
}

fn failed(args: &[&str], out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "mgw {args:?} should fail with 1; stdout {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr.clone()).expect("utf-8")
}

#[test]
fn operator_session() {
    let server = Server::configure("cli-admin", "").start();
    let cli = Cli::new(&server);

    assert_eq!(cli.ok(&["account", "list"]), "no accounts\n");
    let out = cli.ok(&[
        "account",
        "create",
        "--name",
        "shop",
        "--main-number",
        "0301234",
        "--channels",
        "2",
        "--network",
        "10.0.0.0/8",
    ]);
    assert!(
        out.starts_with("account 1 \"shop\" created (pending) with main number 0301234"),
        "{out}"
    );
    let out = cli.ok(&["account", "list"]);
    let mut lines = out.lines();
    assert!(
        lines.next().is_some_and(|h| h.starts_with("ID  NAME")),
        "{out}"
    );
    let row = lines.next().expect("a row");
    for cell in ["shop", "pending", "0301234", "0/2", "metered"] {
        assert!(row.contains(cell), "{cell:?} missing in {out}");
    }
    let list = cli.json(&["account", "list"]);
    let accounts = list.as_array().expect("array");
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["name"], "shop");
    assert_eq!(accounts[0]["allowed_networks"][0], "10.0.0.0/8");

    assert_eq!(
        cli.ok(&["account", "enable", "1"]),
        "account 1 \"shop\" enabled\n"
    );
    assert!(cli
        .ok(&["account", "show", "shop"])
        .contains("\nstate:            enabled\n"));
    let out = cli.ok(&["account", "update", "shop", "--unlimited", "--no-networks"]);
    assert!(out.contains("channels unlimited"), "{out}");
    assert!(out.contains("allowed networks any"), "{out}");
    let out = cli.ok(&["account", "disable", "shop"]);
    assert!(out.starts_with("account 1 \"shop\" disabled"), "{out}");

    // Deleting is refused while an extra number is linked; every blocker is named.
    cli.ok(&["account", "add-number", "shop", "0301235"]);
    let err = cli.fails(&["account", "delete", "shop"]);
    assert!(
        err.starts_with("mgw: account 1 (\"shop\") cannot be deleted"),
        "{err}"
    );
    assert!(err.contains("\n  fix: "), "{err}");
    assert!(
        err.contains("\n  blocker: extra numbers are linked: 0301235"),
        "{err}"
    );
    assert!(cli.ok(&["account", "list"]).contains("shop"), "still there");

    // Numbers.
    let out = cli.ok(&["number", "list"]);
    assert!(out.contains("0301235  1 (shop)  extra"), "{out}");
    cli.ok(&["number", "create", "0309999"]);
    let free = cli.json(&["number", "list", "--free"]);
    assert_eq!(free.as_array().map(Vec::len), Some(1), "{free}");
    assert_eq!(
        cli.ok(&["number", "delete", "0309999"]),
        "number 0309999 deleted\n"
    );

    // Log-ons and profiles.
    let out = cli.ok(&[
        "profile",
        "create",
        "desk",
        "--min",
        "60",
        "--max",
        "3600",
        "--default",
        "600",
    ]);
    assert_eq!(
        out,
        "profile \"desk\" created (min 60s, default 600s, max 3600s)\n"
    );
    let out = cli.ok(&[
        "logon",
        "create",
        "--user",
        "alice",
        "--password",
        "s3cret",
        "--number",
        "0301234",
        "--profile",
        "desk",
    ]);
    assert_eq!(
        out,
        "log-on \"alice\" created on number 0301234 of account 1 (shop), profile desk\n"
    );
    let out = cli.ok(&["logon", "list"]);
    assert!(out.contains("alice  0301234  1 (shop)  desk"), "{out}");
    let out = cli.ok(&["profile", "update", "desk", "--max", "7200"]);
    assert!(out.contains("(min 60s, default 600s, max 7200s)"), "{out}");
    cli.ok(&["logon", "update", "alice", "--no-profile"]);
    assert!(cli
        .ok(&["logon", "show", "alice"])
        .contains("\nprofile:       default\n"));
    cli.ok(&["profile", "delete", "desk"]);

    // Licences and registrations.
    let out = cli.ok(&["licence", "status"]);
    assert!(
        out.starts_with("Licences: 0 of 10 in use (10 free)\n"),
        "{out}"
    );
    let out = cli.ok(&["licence", "reset"]);
    assert!(out.starts_with("licences reset: 0 freed; "), "{out}");
    cli.ok(&["licence", "set-total", "5"]);
    assert!(cli.ok(&["licence", "status"]).contains("0 of 5 in use"));
    assert_eq!(cli.json(&["registrations"]), serde_json::json!([]));
    assert_eq!(cli.ok(&["registrations"]), "no registrations\n");
    assert_eq!(
        cli.ok(&["registrations", "drop", "alice"]),
        "log-on \"alice\": 0 registration(s) dropped\n"
    );
    assert_eq!(cli.json(&["cdrs", "--limit", "10"]), serde_json::json!([]));
    assert_eq!(cli.ok(&["account", "cdrs", "shop"]), "no call records\n");
    let err = cli.fails(&["cdrs", "--limit", "0"]);
    assert!(
        err.starts_with("mgw: limit \"0\" is not a number from 1 to 10000"),
        "{err}"
    );

    // Unlinking and deleting in order succeeds; the log-ons go with the account.
    cli.ok(&["account", "remove-number", "shop", "0301235"]);
    let out = cli.ok(&["account", "delete", "shop"]);
    assert_eq!(
        out,
        "account 1 \"shop\" deleted; main number 0301234 is free; log-ons deleted: alice\n"
    );
    let err = cli.fails(&["logon", "show", "alice"]);
    assert!(err.starts_with("mgw: no log-on \"alice\""), "{err}");
}

#[test]
fn wrong_token_and_unreachable_api() {
    let server = Server::configure("cli-admin-errors", "").start();
    let cli = Cli::new(&server);

    let args = ["account", "list"];
    let err = failed(&args, &cli.run_with_token(&args, "wrong"));
    assert!(err.contains("refused the token"), "{err}");
    assert!(err.contains("--token"), "{err}");
    assert!(err.contains("MGW_TOKEN"), "{err}");

    let nowhere = Cli {
        api: format!("http://127.0.0.1:{}", free_port()),
    };
    let err = nowhere.fails(&args);
    assert!(
        err.starts_with(&format!(
            "mgw: cannot reach the admin API at {}: ",
            nowhere.api
        )),
        "{err}"
    );
    assert!(
        err.contains("is mgw serve running? (set --api or MGW_API)"),
        "{err}"
    );
}

#[test]
fn address_and_token_from_environment_or_config() {
    let server = Server::configure("cli-admin-config", "").start();

    // From the gateway's config file alone.
    let out = Command::new(MGW)
        .args(["licence", "status", "--config"])
        .arg(&server.config)
        .env_remove("MGW_API")
        .env_remove("MGW_TOKEN")
        .output()
        .expect("run mgw");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Licences: 0 of 10"));

    // From the environment.
    let out = Command::new(MGW)
        .args(["account", "list", "--json"])
        .env("MGW_API", format!("http://127.0.0.1:{}", server.admin))
        .env("MGW_TOKEN", "t")
        .output()
        .expect("run mgw");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]\n");

    // An unreadable --config is a usage error (2), as for `mgw config check`.
    let out = Command::new(MGW)
        .args(["account", "list", "--config", "/nonexistent/mgw.toml"])
        .env_remove("MGW_API")
        .env_remove("MGW_TOKEN")
        .output()
        .expect("run mgw");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("mgw: config: "));
}

#[test]
fn logon_password_from_stdin() {
    let server = Server::configure("cli-admin-stdin", "").start();
    let cli = Cli::new(&server);
    cli.ok(&[
        "account",
        "create",
        "--name",
        "shop",
        "--main-number",
        "0301234",
    ]);
    cli.ok(&["account", "enable", "shop"]);

    // The password is piped in, so it is in neither `ps` nor the shell history.
    let args = [
        "logon",
        "create",
        "--user",
        "alice",
        "--number",
        "0301234",
        "--password",
        "-",
    ];
    let mut child = Command::new(MGW)
        .args(args)
        .args(["--api", &cli.api, "--token", "t"])
        .env_remove("MGW_API")
        .env_remove("MGW_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mgw");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"piped s3cret\n")
        .expect("write the password");
    let out = child.wait_with_output().expect("wait for mgw");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "log-on \"alice\" created on number 0301234 of account 1 (shop), profile default\n"
    );
    assert!(out.stderr.is_empty(), "no prompt when stdin is a pipe");

    let alice = cli.json(&["logon", "show", "alice"]);
    assert_eq!(alice["user"], "alice", "{alice}");
    assert_eq!(alice["number"], "0301234", "{alice}");
    assert_eq!(alice["account"], "shop", "{alice}");
    // The first line, without its newline, is the password: a phone registers with it.
    assert_eq!(
        Phone::new(server.sip(), "alice", "piped s3cret").register(60),
        200
    );

    // Nothing on stdin: refused as a usage error, and no log-on is created.
    let args = [
        "logon",
        "create",
        "--user",
        "bob",
        "--number",
        "0301234",
        "--password",
        "-",
    ];
    let out = Command::new(MGW)
        .args(args)
        .args(["--api", &cli.api, "--token", "t"])
        .env_remove("MGW_API")
        .env_remove("MGW_TOKEN")
        .output()
        .expect("run mgw");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("mgw: --password -: the first line of standard input is empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = cli.fails(&["logon", "show", "bob"]);
    assert!(err.starts_with("mgw: no log-on \"bob\""), "{err}");
}
