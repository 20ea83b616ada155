//! What uvsd needs from the kernel, checked before it touches the network, and who command
//! health checks run as.
//!
//! uvsd does not need to be root, only to hold the capabilities below in its effective set
//! (the packaged unit runs it as the `uvs` user with exactly these as ambient
//! capabilities). The list was measured, not guessed: uvsd was run on the test network as
//! an unprivileged user with each capability of a candidate set taken away in turn
//! (ARCHITECTURE.md, platform facts, has the results).

/// One capability uvsd needs: its number (linux/capability.h), its name as
/// capabilities(7) writes it, and what fails without it.
#[derive(Clone, Copy, Debug)]
pub struct Cap {
    pub bit: u32,
    pub name: &'static str,
    pub why: &'static str,
}

/// The capabilities uvsd needs. Measured minimum (Linux 6.18, veth, copy mode): without any
/// one of these uvsd cannot serve; CAP_SYS_ADMIN, CAP_SYS_NICE and CAP_SYS_RESOURCE are not
/// needed (workers pin themselves with sched_setaffinity, which needs nothing).
pub const NEEDED: &[Cap] = &[
    Cap {
        bit: 12,
        name: "CAP_NET_ADMIN",
        why: "to create the XSKMAP and attach the XDP program",
    },
    Cap {
        bit: 13,
        name: "CAP_NET_RAW",
        why: "to open AF_XDP sockets",
    },
    Cap {
        bit: 14,
        name: "CAP_IPC_LOCK",
        why: "to lock the AF_XDP packet buffers beyond RLIMIT_MEMLOCK",
    },
    Cap {
        bit: 38,
        name: "CAP_PERFMON",
        why: "for the verifier to accept the XDP program's packet pointer arithmetic, \
              refused without it as a Spectre v1 guard",
    },
    Cap {
        bit: 39,
        name: "CAP_BPF",
        why: "to load the XDP program and create its maps",
    },
];

/// The effective capability set of this process (`CapEff` of /proc/self/status).
pub fn effective() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status for the capability set: {e}"))?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .ok_or("/proc/self/status has no CapEff line")?;
    u64::from_str_radix(hex.trim(), 16).map_err(|e| format!("CapEff {:?}: {e}", hex.trim()))
}

/// The needed capabilities missing from the effective set `eff`.
pub fn missing(eff: u64) -> Vec<Cap> {
    NEEDED
        .iter()
        .filter(|c| eff & (1u64 << c.bit) == 0)
        .copied()
        .collect()
}

/// Refuses to start without a needed capability, naming each missing one and why it is
/// needed, in one sentence.
pub fn check_daemon() -> Result<(), String> {
    let lacking = missing(effective()?);
    if lacking.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = lacking
        .iter()
        .map(|c| format!("{} ({})", c.name, c.why))
        .collect();
    Err(format!(
        "missing {}: run uvsd as root, or give it these capabilities (the packaged unit's \
         AmbientCapabilities=, or `setpriv --inh-caps +… --ambient-caps +…`)",
        list.join(", ")
    ))
}

/// An account a command health check runs as.
#[derive(Clone, Debug)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
    pub home: std::path::PathBuf,
}

/// Looks `name` (or a numeric uid) up in the host's user database.
pub fn account(name: &str) -> Result<Account, String> {
    let found = match name.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(name),
    }
    .map_err(|e| format!("looking up user '{name}': {e}"))?;
    let u = found
        .ok_or_else(|| format!("health_check.user: there is no user '{name}' on this host"))?;
    Ok(Account {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        home: u.dir,
    })
}

const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;

/// Every command check's `user` exists, and uvsd may switch to it: as root, or holding
/// CAP_SETUID and CAP_SETGID, or being that user already. Checked when a configuration
/// is loaded, so a check that could never run is refused with the file, not failed later.
pub fn check_users(cfg: &uvs_config::Config) -> Result<(), String> {
    let me = nix::unistd::geteuid().as_raw();
    let eff = effective()?;
    let can_switch = eff & (1 << CAP_SETUID) != 0 && eff & (1 << CAP_SETGID) != 0;
    for s in &cfg.services {
        for name in command_users(s) {
            let acct = account(name).map_err(|e| format!("service '{}': {e}", s.name))?;
            if acct.uid != me && !can_switch {
                return Err(format!(
                    "service '{}': its command check runs as user '{name}', and switching to it \
                 needs CAP_SETUID and CAP_SETGID, which uvsd (uid {me}) lacks: leave \
                 `user` out to run checks as uvsd's own user, or grant both",
                    s.name
                ));
            }
        }
    }
    Ok(())
}

/// Every command check's `user` has an account on this host (what `uvsd --check-config`
/// can tell whoever runs it; whether uvsd may switch to it depends on uvsd's privileges).
pub fn check_accounts(cfg: &uvs_config::Config) -> Result<(), String> {
    for s in &cfg.services {
        for name in command_users(s) {
            account(name).map_err(|e| format!("service '{}': {e}", s.name))?;
        }
    }
    Ok(())
}

/// The `user`s of a service's command checks.
fn command_users(s: &uvs_config::Service) -> impl Iterator<Item = &str> {
    s.health_checks().filter_map(|check| match &check.kind {
        uvs_config::HealthCheckKind::Command {
            user: Some(name), ..
        } => Some(name.as_str()),
        _ => None,
    })
}

/// Empties this thread's ambient and inheritable capability sets, so that nothing uvsd
/// runs (command checks, `ip`) gets its capabilities through execve (capabilities(7):
/// without file capabilities a program keeps only the ambient set). Called first thing,
/// on the main thread: threads inherit the sets they are created with. uvsd's own
/// effective set is untouched.
pub fn keep_capabilities_from_children() {
    for set in [caps::CapSet::Ambient, caps::CapSet::Inheritable] {
        if let Err(e) = caps::clear(None, set) {
            log::warn!("cannot clear the {set:?} capability set: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_names_each_absent_capability() {
        let all: u64 = NEEDED.iter().map(|c| 1u64 << c.bit).sum();
        assert!(missing(all).is_empty());
        assert!(missing(u64::MAX).is_empty());
        let names: Vec<&str> = missing(0).iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "CAP_NET_ADMIN",
                "CAP_NET_RAW",
                "CAP_IPC_LOCK",
                "CAP_PERFMON",
                "CAP_BPF"
            ]
        );
        let without_bpf = all & !(1 << 39);
        let m = missing(without_bpf);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "CAP_BPF");
    }

    #[test]
    fn accounts_are_looked_up_by_name_and_number() {
        let root = account("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(account("0").unwrap().uid, 0);
        let e = account("uvs-no-such-user").unwrap_err();
        assert!(e.contains("no user 'uvs-no-such-user'"), "{e}");
    }
}
