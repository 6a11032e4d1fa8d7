//! Build facts for `cairn --version`: the short Git SHA of the checkout ("Not provided"
//! without git or outside a repository, as etcd's default) and the compiler's version.

use std::process::Command;

fn main() {
    let git_sha =
        git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "Not provided".to_string());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=CAIRN_GIT_SHA={git_sha}");
    println!("cargo:rustc-env=CAIRN_RUSTC_VERSION={rustc_version}");
    // Rebuild when HEAD moves (best effort): HEAD itself and the branch it points to.
    let symbolic = git(&["rev-parse", "--symbolic-full-name", "HEAD"]);
    for name in ["HEAD".to_string()].into_iter().chain(symbolic) {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// The trimmed output of a successful `git` command.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}
