//! `trawl config check`: a good file passes, a bad key is named with its file.

use std::process::Command;

fn check(file: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trawl"))
        .args(["config", "check"])
        .arg(file)
        .env_remove("TRAWL_DATA_DIR")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_check_passes_a_good_file_and_names_a_bad_key_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "cluster = \"prod\"\n[collector]\npods_dir = \"/var/log/pods\"\n[indexer]\ncommit_interval_ms = 500\n[streams.logs]\nretention_max_age_secs = 604800\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = check(&good);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[collector]\npods_dri = \"/var/log/pods\"\n").unwrap();
    let (ok, _, stderr) = check(&bad);
    assert!(!ok);
    assert!(stderr.contains("collector.pods_dri"), "{stderr}");
    assert!(stderr.contains(&bad.display().to_string()), "{stderr}");

    // The example configuration shipped with the repository is valid.
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let (ok, _, stderr) = check(&example);
    assert!(ok, "{stderr}");
}
