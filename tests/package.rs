//! The downloadable package: the release archive builds, installs into a
//! staging root with the right files and modes (twice, keeping the
//! configuration), its unit scores "OK" in `systemd-analyze security`, its
//! binary refuses the development license key, and uninstall keeps or purges
//! data as asked. The archive's binary is built with the dev profile, whose
//! dependencies the test build has already compiled (a release build of
//! them takes most of ten minutes on CI);
//! `TOPDOG_PACKAGE_PROFILE=release` checks the release profile's archive.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|_| panic!("{} missing", path.display())).permissions().mode() & 0o777
}

/// Keeps a copy of the binary the other tests run and puts it back when
/// dropped: the archive's dev-profile build (without the development key)
/// writes the same path. Put back by rename, which replaces the path's
/// entry and never writes through it into cargo's own copy.
struct BinaryUnderTest {
    path: PathBuf,
    saved: PathBuf,
}

impl BinaryUnderTest {
    fn save() -> BinaryUnderTest {
        let path = PathBuf::from(env!("CARGO_BIN_EXE_topdog"));
        let saved = path.with_extension("under-test");
        std::fs::copy(&path, &saved).expect("a copy of the binary under test");
        BinaryUnderTest { path, saved }
    }
}

impl Drop for BinaryUnderTest {
    fn drop(&mut self) {
        if let Err(e) = std::fs::rename(&self.saved, &self.path) {
            eprintln!("could not put the binary under test back: {e}");
        }
    }
}

fn build_and_unpack(into: &Path) -> PathBuf {
    let _restore = BinaryUnderTest::save();
    let profile = std::env::var("TOPDOG_PACKAGE_PROFILE").unwrap_or_else(|_| "dev".into());
    let mut build = Command::new("bash");
    build.arg(repo().join("installer/build-release.sh")).args(["--profile", &profile]);
    // What cargo sets for a test process would make build scripts that
    // watch it (ring's watches CARGO_MANIFEST_DIR and OUT_DIR) run again.
    let set_by_cargo = |n: &str| (n.starts_with("CARGO_") && n != "CARGO_HOME") || n == "OUT_DIR";
    for (name, _) in std::env::vars().filter(|(n, _)| set_by_cargo(n)) {
        build.env_remove(name);
    }
    let printed = run(&mut build);
    let archive = repo().join(printed.lines().last().expect("archive path").trim());
    assert!(archive.to_string_lossy().ends_with("-x86_64-linux.tar.gz"));
    run(Command::new("tar").arg("-xzf").arg(&archive).arg("-C").arg(into));
    let dir = std::fs::read_dir(into).unwrap().next().unwrap().unwrap().path();
    for file in ["topdog", "install.sh", "topdog.service", "topdog.example.toml", "README.md"] {
        assert!(dir.join(file).is_file(), "{file} missing from the archive");
    }
    dir
}

fn install(unpacked: &Path, root: &Path, args: &[&str]) -> String {
    run(Command::new("sh").arg(unpacked.join("install.sh")).args(args).env("DESTDIR", root))
}

/// The release binary must not trust the development license key.
fn release_refuses_dev_key(binary: &Path) {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    let mut child = Command::new(binary)
        .args(["serve", "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.map(|l| l.starts_with("Next:")).unwrap_or(false)), "release binary did not start");
    let dev_key = repo().join("license-keys/dev-license-key.private");
    let key = run(Command::new(binary)
        .args(["license", "issue", "--customer", "X", "--seats", "9", "--signing-key"])
        .arg(dev_key));
    let out = Command::new(binary).args(["license", "activate", key.trim(), "--data-dir"]).arg(&data).output().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("license_unknown_key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn exposure(unit: &Path) -> f64 {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(unit)
        .output()
        .expect("systemd-analyze");
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("no score: {text}"));
    line.split(':').nth(1).and_then(|s| s.split_whitespace().next()).and_then(|n| n.parse().ok()).expect("score")
}

#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs systemd-analyze: the test command (tests/run.sh) installs it and runs this"
)]
#[test]
fn release_archive_installs_runs_and_uninstalls() {
    let scratch = tempfile::tempdir().unwrap();
    let unpack = scratch.path().join("unpack");
    std::fs::create_dir(&unpack).unwrap();
    let unpacked = build_and_unpack(&unpack);
    release_refuses_dev_key(&unpacked.join("topdog"));
    let drop_in = std::fs::read_to_string(unpacked.join("acme-ports.conf")).expect("the ACME ports drop-in ships");
    assert!(drop_in.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE\n"), "{drop_in}");

    let root = scratch.path().join("root");
    let first = install(&unpacked, &root, &[]);
    assert!(first.contains("Admin token (shown only this once"), "{first}");
    assert!(first.contains("systemd is not running here"), "{first}");
    assert_eq!(mode(&root.join("usr/local/bin/topdog")), 0o755);
    assert_eq!(mode(&root.join("etc/systemd/system/topdog.service")), 0o644);
    assert_eq!(mode(&root.join("etc/topdog")), 0o750);
    assert_eq!(mode(&root.join("etc/topdog/topdog.toml")), 0o640);
    assert_eq!(mode(&root.join("var/lib/topdog")), 0o700);
    assert_eq!(mode(&root.join("var/lib/topdog/admin-token.sha256")), 0o600);
    assert_eq!(mode(&root.join("var/lib/topdog/jwt-signing-key.pem")), 0o600);
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/topdog.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("User=topdog"));
    let score = exposure(&root.join("etc/systemd/system/topdog.service"));
    assert!(score <= 2.0, "systemd-analyze exposure {score} is above 2.0");

    std::fs::write(root.join("etc/topdog/topdog.toml"), "invite_expiry = \"7m\"\n").unwrap();
    let again = install(&unpacked, &root, &[]);
    assert!(again.contains("kept existing") && again.contains("already set"), "{again}");
    assert_eq!(std::fs::read_to_string(root.join("etc/topdog/topdog.toml")).unwrap(), "invite_expiry = \"7m\"\n");

    install(&unpacked, &root, &["--uninstall"]);
    assert!(!root.join("usr/local/bin/topdog").exists());
    assert!(root.join("var/lib/topdog/jwt-signing-key.pem").exists(), "data kept without --purge");
    install(&unpacked, &root, &["--uninstall", "--purge"]);
    assert!(!root.join("var/lib/topdog").exists() && !root.join("etc/topdog").exists());
}
