//! scripts/keepalived/uvs-notify.sh against a stand-in uvsadm (a shell script keeping the
//! group's role in a file, as uvsd would): the notify form applies keepalived's state, the
//! track form (`--track`, configs/keepalived.conf's vrrp_script) fails while uvsd does not
//! answer and puts back the role keepalived last notified when uvsd lost it (a uvsd that
//! restarted faster than the track script's `fall` comes back in its YAML role, backup,
//! while keepalived stays MASTER and notifies nothing: nobody would serve the VIPs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Bed {
    dir: PathBuf,
}

impl Bed {
    fn new(name: &str) -> Bed {
        let dir = std::env::temp_dir().join(format!("uvs-notify-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // `cluster` lists the group with its role; `cluster role G R` sets it; a file
        // named `down` makes it fail as uvsadm does when uvsd is not answering.
        let fake = format!(
            "#!/bin/sh\nd={}\n[ -e $d/down ] && {{ echo 'uvsadm: cannot reach uvsd' >&2; exit 1; }}\n\
             echo \"$*\" >> $d/calls\n\
             if [ \"$1 $2\" = 'cluster role' ]; then echo \"$4\" > $d/role.$3; exit 0; fi\n\
             echo 'Group            Role    For      Switches  Addresses'\n\
             r=$(cat $d/role.web 2>/dev/null || echo backup)\n\
             echo \"web              $(echo $r | tr a-z A-Z)  3s       1         198.18.0.100\"\n\
             echo 'Announcements sent: 5'\n",
            dir.display()
        );
        let bin = dir.join("uvsadm");
        std::fs::write(&bin, fake).unwrap();
        let st = Command::new("chmod")
            .arg("0755")
            .arg(&bin)
            .status()
            .unwrap();
        assert!(st.success());
        Bed { dir }
    }

    fn notify(&self, args: &[&str]) -> Output {
        Command::new(repo().join("scripts/keepalived/uvs-notify.sh"))
            .arg("--uvsadm")
            .arg(self.dir.join("uvsadm"))
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .args(["--tries", "1"])
            .args(args)
            .output()
            .unwrap()
    }

    fn role(&self) -> String {
        read(&self.dir.join("role.web")).trim().to_string()
    }

    fn calls(&self) -> String {
        read(&self.dir.join("calls"))
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn track_puts_back_the_role_keepalived_notified_last() {
    let bed = Bed::new("track");
    // Before any notification the track script only asks whether uvsd answers.
    let o = bed.notify(&["--track"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(bed.calls(), "cluster\n");

    let o = bed.notify(&["web", "INSTANCE", "web", "MASTER", "150"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(bed.role(), "master");

    // uvsd restarts and comes back in its YAML role; keepalived, still MASTER, says
    // nothing: the next track round puts the group back.
    std::fs::write(bed.dir.join("role.web"), "backup\n").unwrap();
    let o = bed.notify(&["--track"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(bed.role(), "master", "{}", text(&o));
    assert!(
        text(&o).contains("web"),
        "it says what it did: {}",
        text(&o)
    );

    // In line already: nothing but the question.
    let _ = std::fs::remove_file(bed.dir.join("calls"));
    let o = bed.notify(&["--track"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(bed.calls(), "cluster\n");

    // uvsd not answering: the track script fails (keepalived gives up mastership).
    std::fs::write(bed.dir.join("down"), "").unwrap();
    let o = bed.notify(&["--track"]);
    assert!(!o.status.success(), "{}", text(&o));
    let _ = std::fs::remove_file(bed.dir.join("down"));

    // keepalived's later BACKUP is what the track form keeps from then on.
    let o = bed.notify(&["web", "INSTANCE", "web", "BACKUP", "150"]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(bed.dir.join("role.web"), "master\n").unwrap();
    let o = bed.notify(&["--track"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(bed.role(), "backup");
}
