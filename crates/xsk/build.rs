//! Compiles the XDP programs (bpf/uvs_xdp.c, the balancer's; bpf/uvs_member.c,
//! the director-less member filter) with clang into OUT_DIR; the crate embeds
//! the objects with `include_bytes!`, so the binary carries its own programs
//! and nothing is read from disk at run time.

use std::{env, path::PathBuf, process::Command};

fn main() {
    println!("cargo:rerun-if-env-changed=CLANG");
    compile("uvs_xdp");
    compile("uvs_member");
}

fn compile(name: &str) {
    let src = format!("bpf/{name}.c");
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join(format!("{name}.o"));
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    // The multiarch include dir provides <asm/types.h> (ARCHITECTURE.md, platform facts).
    let status = Command::new(&clang)
        .args([
            "-O2",
            "-g",
            "-Wall",
            "-Werror",
            "-target",
            "bpf",
            "-I/usr/include/x86_64-linux-gnu",
            "-c",
            &src,
            "-o",
        ])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{clang}` to build the XDP program ({e}): install clang and libbpf-dev"
            )
        });
    assert!(
        status.success(),
        "`{clang}` failed to compile {src} (see the messages above)"
    );
}
