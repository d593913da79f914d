//! How the release daemon is linked, for less memory and a smaller file.
//!
//! - **Hot functions first.** The functions the daemon runs while it starts,
//!   sits idle and answers `/health` are listed in `scripts/hot-symbols.txt`
//!   (written by `scripts/hot-symbols.sh`) and the linker puts them together
//!   at the start of the code. The kernel maps a binary's pages around each
//!   page touched (64 KiB by default), so with those functions spread over
//!   4.6 MB of code almost all of it was resident; together they take about
//!   1 MB. A name the list has and the binary lacks (after a dependency or
//!   toolchain update) is skipped: the binary is the same, only less compact
//!   in memory, until the list is written again.
//! - **Packed relative relocations** (`DT_RELR`): the PIE's 261 kB of
//!   relocations in about 7 kB, read at every start. Only when the building
//!   machine's glibc is 2.36 or later, as the binary then needs it to run.
//! - **Stripped at link time**, not by the profile's `strip`: the profile is
//!   part of every crate's metadata and so of every symbol's name, and the
//!   list must be taken from a binary that keeps its symbols
//!   (`OPENCLAW_TRACE_KEEP_SYMBOLS=1`) yet names them as the stripped one.

use std::env;
use std::process::Command;

const BIN: &str = "openclaw-trace";
const HOT_SYMBOLS: &str = "scripts/hot-symbols.txt";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={HOT_SYMBOLS}");
    println!("cargo:rerun-if-env-changed=OPENCLAW_TRACE_KEEP_SYMBOLS");

    let var = |name: &str| env::var(name).unwrap_or_default();
    // The release profile and those that inherit it; `DEBUG` is true for the
    // `profiling` one, which keeps its symbols and line tables.
    if var("PROFILE") != "release" || var("CARGO_CFG_TARGET_OS") != "linux" {
        return;
    }
    let link_arg = |arg: &str| println!("cargo:rustc-link-arg-bin={BIN}={arg}");

    if var("DEBUG") != "true" && var("OPENCLAW_TRACE_KEEP_SYMBOLS").is_empty() {
        link_arg("-Wl,--strip-all");
    }
    if var("TARGET") == "x86_64-unknown-linux-gnu" && links_with_lld(&var) {
        let list = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join(HOT_SYMBOLS);
        if list.is_file() {
            link_arg(&format!("-Wl,--symbol-ordering-file={}", list.display()));
            link_arg("-Wl,--no-warn-symbol-ordering");
        }
    }
    if var("CARGO_CFG_TARGET_ENV") == "gnu" && glibc_at_least(2, 36) {
        link_arg("-Wl,-z,pack-relative-relocs");
    }
}

/// Whether rustc links this target with its own LLD, as it does from 1.90 on
/// for x86_64 Linux unless a linker is set: `--symbol-ordering-file` is an
/// LLD option that GNU ld refuses.
fn links_with_lld(var: &dyn Fn(&str) -> String) -> bool {
    if !var("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_empty()
        || var("CARGO_ENCODED_RUSTFLAGS").contains("linker")
    {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("-V").output() else {
        return false;
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let version = String::from_utf8_lossy(&out.stdout);
    let mut parts = version
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .split(['.', '-'])
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 90)
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
