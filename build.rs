//! How the release daemon is linked, for less memory and a smaller file.
//!
//! - **Hot functions first.** The functions the daemon runs while it starts,
//!   sits idle and answers `/health` are listed in `scripts/hot-symbols.txt`
//!   (written by `scripts/hot-symbols.sh`) and the linker puts them together
//!   at the start of the code. The kernel maps a binary's pages around each
//!   page touched (64 KiB by default), so with those functions spread over
//!   4.6 MB of code almost all of it was resident; together they take about
//!   1.4 MB. A name the list has and the binary lacks is skipped: a stale
//!   list (another toolchain or `Cargo.lock`, which the list's first lines
//!   name; the build warns) leaves the binary as it would be, only less
//!   compact in memory.
//! - **Packed relative relocations** (`DT_RELR`): the PIE's 261 kB of
//!   relocations in about 7 kB, read at every start. The binary then needs
//!   glibc 2.36 or later to run, so they are packed only in a native build on
//!   such a glibc (the Dockerfile's bookworm, where OpenClaw's image runs it).
//! - **Stripped at link time**, not by the profile's `strip`: the profile is
//!   part of every crate's metadata and so of every symbol's name, and the
//!   list must be taken from a binary that keeps its symbols
//!   (`OPENCLAW_TRACE_KEEP_SYMBOLS=1`) yet names them as the stripped one.
//!
//! Each option is used only when a trial link of an empty program with the
//! same rustc, flags and linker accepts it (a distribution's rustc linking
//! with GNU ld, mold or a configured linker has no `--symbol-ordering-file`).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = "openclaw-trace";
const HOT_SYMBOLS: &str = "scripts/hot-symbols.txt";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={HOT_SYMBOLS}");
    println!("cargo:rerun-if-changed=Cargo.lock");
    for var in [
        "OPENCLAW_TRACE_KEEP_SYMBOLS",
        "RUSTC_LINKER",
        "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    // The release profile and those that inherit it; `DEBUG` is true for the
    // `profiling` one, which keeps its symbols and line tables.
    if var("PROFILE") != "release" || var("CARGO_CFG_TARGET_OS") != "linux" {
        return;
    }
    // `cargo fuzz` builds in release with coverage instrumentation (and
    // `--cfg fuzzing`), which an empty trial program cannot link without
    // libFuzzer's runtime: a fuzzing build keeps the plain link.
    if env::var_os("CARGO_CFG_FUZZING").is_some() {
        return;
    }
    let out = PathBuf::from(var("OUT_DIR"));
    let root = PathBuf::from(var("CARGO_MANIFEST_DIR"));
    let Some(trial) = Trial::new(&out) else {
        println!("cargo:warning=could not build a trial program; linking the plain way");
        return;
    };

    let mut args: Vec<String> = Vec::new();
    if var("DEBUG") != "true" && var("OPENCLAW_TRACE_KEEP_SYMBOLS") != "1" {
        args.extend(trial.accepted(&["--strip-all"]));
    }
    let list = root.join(HOT_SYMBOLS);
    if list.is_file() {
        let ordering = format!("--symbol-ordering-file={}", list.display());
        args.extend(trial.accepted(&[&ordering, "--no-warn-symbol-ordering"]));
        if let Some(stale) = stale_list(&list, &root) {
            println!("cargo:warning={HOT_SYMBOLS} {stale}; run scripts/hot-symbols.sh");
        }
    }
    if var("CARGO_CFG_TARGET_ENV") == "gnu" && var("HOST") == var("TARGET") && glibc_at_least(2, 36)
    {
        args.extend(trial.accepted(&["-z", "pack-relative-relocs"]));
    }
    for arg in args {
        // -Xlinker passes an argument whole (-Wl, would split a path at
        // its commas).
        println!("cargo:rustc-link-arg-bin={BIN}=-Xlinker");
        println!("cargo:rustc-link-arg-bin={BIN}={arg}");
    }
}

/// An empty program linked the way this build links, to try linker options.
struct Trial {
    source: PathBuf,
    out: PathBuf,
}

impl Trial {
    fn new(out_dir: &Path) -> Option<Trial> {
        let source = out_dir.join("link_trial.rs");
        std::fs::write(&source, "fn main() {}\n").ok()?;
        let trial = Trial {
            source,
            out: out_dir.join("link_trial"),
        };
        trial.links(&[]).then_some(trial)
    }

    /// `options`, if the linker accepts them, else nothing.
    fn accepted(&self, options: &[&str]) -> Vec<String> {
        if self.links(options) {
            options.iter().map(|o| o.to_string()).collect()
        } else {
            println!(
                "cargo:warning=the linker refused {}; linking without it",
                options.join(" ")
            );
            Vec::new()
        }
    }

    fn links(&self, options: &[&str]) -> bool {
        let mut rustc = rustc();
        rustc
            .arg("--target")
            .arg(var("TARGET"))
            .arg("-o")
            .arg(&self.out)
            .arg(&self.source);
        let flags = var("CARGO_ENCODED_RUSTFLAGS");
        rustc.args(flags.split('\x1f').filter(|f| !f.is_empty()));
        let linker = var("RUSTC_LINKER");
        if !linker.is_empty() {
            rustc.arg("-C").arg(format!("linker={linker}"));
        }
        for option in options {
            rustc.arg("-C").arg("link-arg=-Xlinker");
            rustc.arg("-C").arg(format!("link-arg={option}"));
        }
        rustc
            .output()
            .is_ok_and(|o| o.status.success() && o.stderr.is_empty())
    }
}

/// A build variable, empty when unset.
fn var(name: &str) -> String {
    env::var(name).unwrap_or_default()
}

/// The rustc that builds this crate.
fn rustc() -> Command {
    Command::new(env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
}

/// Why the hot list was written for another build, if it was: its first
/// lines name the rustc (`# rustc 1.95.0 (…)`) and the `Cargo.lock` (`#
/// Cargo.lock fnv1a64 …`) it was taken with.
fn stale_list(list: &Path, root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(list).ok()?;
    let headers: Vec<&str> = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim())
        .collect();
    let rustc = rustc().arg("-V").output().ok()?;
    let rustc = String::from_utf8_lossy(&rustc.stdout).trim().to_string();
    if !headers.contains(&rustc.as_str()) {
        return Some(format!("was not written with {rustc}"));
    }
    let lock = std::fs::read(root.join("Cargo.lock")).ok()?;
    let lock = format!("Cargo.lock fnv1a64 {:016x}", fnv1a64(&lock));
    if !headers.contains(&lock.as_str()) {
        return Some("was written for another Cargo.lock".into());
    }
    None
}

/// FNV-1a, 64 bits: a stable checksum that `scripts/hot-symbols.sh` computes
/// the same way.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Whether this machine's glibc is at least `major.minor` (`getconf
/// GNU_LIBC_VERSION` prints "glibc 2.36"); false when that cannot be told.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (major, minor)
}
