//! The generated include against the real BIRD 2: a bird.conf that includes it parses,
//! and `configure` over BIRD's control socket (what uvsd sends) makes BIRD hold exactly the
//! VIP routes of the file, IPv4 /32 and IPv6 /128, also after VIPs are withdrawn.
//! Skipped, visibly, when `bird` is not installed (`.ci/run` installs bird2).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use uvs_control::announce::{bird_configure, render_include};

fn have_bird() -> bool {
    Command::new("bird")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

struct Bird(Child);
impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn routes(sock: &std::path::Path) -> String {
    let o = Command::new("birdc")
        .args(["-s", sock.to_str().unwrap(), "show", "route"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn vips(v: &[&str]) -> BTreeSet<IpAddr> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn bird_takes_the_include_and_reconfigures() {
    if !have_bird() {
        eprintln!("skipping bird_takes_the_include_and_reconfigures: BIRD 2 (`bird`) is not installed; `.ci/run --deps-only` installs bird2");
        return;
    }
    let dir = std::env::temp_dir().join(format!("uvs-bird-include-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let include = dir.join("uvs-vips.conf");
    let conf = dir.join("bird.conf");
    let sock = dir.join("bird.ctl");
    std::fs::write(&include, render_include(&BTreeSet::new())).unwrap();
    std::fs::write(
        &conf,
        format!(
            "router id 198.18.255.1;\ninclude \"{}\";\n",
            include.display()
        ),
    )
    .unwrap();
    let parse = Command::new("bird")
        .args(["-p", "-c", conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        parse.status.success(),
        "bird -p: {}",
        String::from_utf8_lossy(&parse.stderr)
    );
    let _bird = Bird(
        Command::new("bird")
            .args([
                "-f",
                "-c",
                conf.to_str().unwrap(),
                "-s",
                sock.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while bird_configure(&sock).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "BIRD did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!routes(&sock).contains("198.18.100"));

    let set = vips(&["198.18.100.1", "198.18.100.2", "2001:2:0:100::1"]);
    std::fs::write(&include, render_include(&set)).unwrap();
    bird_configure(&sock).unwrap();
    let r = routes(&sock);
    for p in ["198.18.100.1/32", "198.18.100.2/32", "2001:2:0:100::1/128"] {
        assert!(r.contains(p), "{p} missing from BIRD's routes:\n{r}");
    }

    std::fs::write(&include, render_include(&vips(&["198.18.100.2"]))).unwrap();
    bird_configure(&sock).unwrap();
    let r = routes(&sock);
    assert!(r.contains("198.18.100.2/32"), "{r}");
    assert!(
        !r.contains("198.18.100.1/32") && !r.contains("2001:2:0:100::1"),
        "{r}"
    );

    // A broken main configuration is reported as BIRD's refusal, not as success.
    std::fs::write(
        &include,
        "protocol static uvs_vips4 { ipv4; route nonsense; }\n",
    )
    .unwrap();
    let e = bird_configure(&sock).unwrap_err();
    assert!(e.contains("refused"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
