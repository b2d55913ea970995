//! The store's commands end to end through the real binary: bootstrap, roles, accounts, verify,
//! checkpoint, export, exit codes.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use crate::store_common as common;

use assert_cmd::Command;

struct Cli {
    db: std::path::PathBuf,
}

impl Cli {
    fn run(&self, who: Option<(&str, &str)>, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_countersign"));
        cmd.env("COUNTERSIGN_DB", &self.db)
            .env_remove("COUNTERSIGN_OPERATOR")
            .env_remove("COUNTERSIGN_PIN")
            .env_remove("COUNTERSIGN_NEW_PIN")
            .args(args);
        if let Some((op, pin)) = who {
            cmd.env("COUNTERSIGN_OPERATOR", op)
                .env("COUNTERSIGN_PIN", pin);
        }
        cmd.output().unwrap()
    }
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn operators_accounts_verify_export_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli {
        db: dir.path().join("audit.sqlite3"),
    };
    let sup = Some(("sam", "111100"));
    let clerk = Some(("carla", "222200"));

    // Bootstrap without sign-in, then a clerk by the supervisor.
    let o = cli.run(
        None,
        &[
            "operator",
            "add",
            "sam",
            "--role",
            "supervisor",
            "--new-pin",
            "111100",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = cli.run(
        None,
        &[
            "operator",
            "add",
            "eve",
            "--role",
            "supervisor",
            "--new-pin",
            "666600",
        ],
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert!(text(&o).contains("--operator"), "{}", text(&o));
    let o = cli.run(
        sup,
        &[
            "operator",
            "add",
            "carla",
            "--role",
            "clerk",
            "--new-pin",
            "222200",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = cli.run(
        clerk,
        &[
            "operator",
            "add",
            "eve",
            "--role",
            "supervisor",
            "--new-pin",
            "666600",
        ],
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert!(text(&o).contains("permission denied"), "{}", text(&o));
    let o = cli.run(Some(("carla", "999900")), &["account", "list"]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));

    // Accounts and references.
    let img = dir.path().join("ref.png");
    std::fs::write(&img, common::png(5)).unwrap();
    let junk = dir.path().join("junk.png");
    std::fs::write(&junk, b"not an image").unwrap();
    assert!(
        cli.run(
            clerk,
            &["account", "add", "ACC-9", "--holder", "Ada, \"Q\" Holder"]
        )
        .status
        .success()
    );
    let o = cli.run(clerk, &["account", "enrol", "ACC-9", img.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let o = cli.run(
        clerk,
        &["account", "enrol", "ACC-9", junk.to_str().unwrap()],
    );
    assert!(
        !o.status.success() && text(&o).contains("cannot be decoded"),
        "{}",
        text(&o)
    );
    let o = cli.run(clerk, &["account", "show", "ACC-9"]);
    assert!(text(&o).contains("40x20"), "{}", text(&o));
    let o = cli.run(
        clerk,
        &["account", "retire-reference", "1", "--reason", "blurred"],
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let o = cli.run(
        sup,
        &["account", "retire-reference", "1", "--reason", "blurred"],
    );
    assert!(o.status.success(), "{}", text(&o));

    // Verify, checkpoint, export.
    let o = cli.run(None, &["audit", "verify"]);
    assert!(
        o.status.success() && text(&o).contains("chain intact"),
        "{}",
        text(&o)
    );
    let cp = dir.path().join("cp.json");
    let o = cli.run(sup, &["audit", "checkpoint", "--out", cp.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let out = dir.path().join("out.csv");
    let o = cli.run(
        sup,
        &[
            "audit",
            "export",
            "--from",
            "2020-01-01",
            "--to",
            "2099-12-31",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        out.is_file()
            && dir.path().join("out.csv.sha256").is_file()
            && dir.path().join("out.csv.anchor.json").is_file()
    );
    let o = cli.run(
        clerk,
        &[
            "audit",
            "export",
            "--out",
            dir.path().join("x.csv").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let o = cli.run(
        None,
        &["audit", "verify", "--checkpoint", cp.to_str().unwrap()],
    );
    assert!(
        o.status.success() && text(&o).contains("checkpoint matches"),
        "{}",
        text(&o)
    );

    // Tamper: exit code 7 naming the row.
    common::attacker(&cli.db)
        .execute("UPDATE ledger SET operator = 'nobody' WHERE id = 2", [])
        .unwrap();
    let o = cli.run(None, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(text(&o).contains("row 2"), "{}", text(&o));
}
