//! The member filter (`bpf/uvs_member.c`): the director-less mode, where every real server
//! receives all of the VIP's frames (a multicast cluster MAC) and keeps only its Maglev
//! share. Loaded through the same path as the balancer's program
//! (`program::open_and_load`, a BPF link per interface); uvsd computes the lookup table
//! (`uvs_sched`'s Maglev) and publishes it with [`MemberProgram::publish`].

use std::{
    io,
    net::Ipv4Addr,
    os::fd::{OwnedFd, RawFd},
    ptr::NonNull,
    sync::Mutex,
};

use libbpf_sys as bpf;

use crate::{
    error::libbpf_error,
    program::{link_create, map_fd, open_and_load, possible_cpus, Aligned},
    sys, XdpMode, XskError,
};

static MEMBER_ELF: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/uvs_member.o")));

/// Largest lookup table (`TABLE_MAX` in uvs_member.c): the project's default Maglev size.
pub const MEMBER_TABLE_MAX: u32 = 65_537;
/// Service ports one member filter can list (`MAX_PORTS`).
pub const MEMBER_MAX_PORTS: usize = 16;
/// A table entry no member owns (`NO_OWNER`): no member is healthy.
pub const NO_OWNER: u16 = 0xffff;

/// How a packet's flow is hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberHash {
    /// Source and destination address, ports and protocol (CLUSTERIP's
    /// `sourceip-sourceport-destport`).
    FiveTuple,
    /// The source address only (NLB's "single" affinity): every flow of a client meets on
    /// one member.
    Source,
}

/// What the filter needs besides the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSettings {
    pub vip: Ipv4Addr,
    /// This member's index in the member list (the table's values).
    pub me: u16,
    /// IP protocol of the service (6 or 17).
    pub proto: u8,
    /// Destination ports hashed per flow; empty: every port.
    pub ports: Vec<u16>,
    pub hash: MemberHash,
    /// The shared multicast MAC the VIP resolves to.
    pub cluster_mac: [u8; 6],
    /// This member's own MAC: kept frames are rewritten to it.
    pub own_mac: [u8; 6],
    /// Entries of the lookup table (a prime ≤ [`MEMBER_TABLE_MAX`]).
    pub table_size: u32,
}

/// The filter's counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemberCounters {
    /// This member's share, passed to the local stack.
    pub kept: u64,
    /// Another member's share: dropped.
    pub other_member: u64,
    /// No healthy member at all: dropped.
    pub no_member: u64,
    /// To the VIP but truncated: dropped.
    pub malformed: u64,
    /// ARP requests for the VIP answered with the cluster MAC.
    pub arp_replied: u64,
    /// ARP for the VIP left to the member that answers it: dropped.
    pub arp_dropped: u64,
    /// Not the cluster's traffic: given to the kernel.
    pub passed: u64,
    /// To the VIP before any table was published: dropped.
    pub not_ready: u64,
}

/// MurmurHash3 (x86_32) over four words, as `flow_hash` in uvs_member.c.
pub fn flow_hash(src: u32, dst: u32, ports: u32, proto: u32) -> u32 {
    fn mix(h: u32, k: u32) -> u32 {
        let k = k
            .wrapping_mul(0xcc9e_2d51)
            .rotate_left(15)
            .wrapping_mul(0x1b87_3593);
        (h ^ k)
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64)
    }
    let mut h = 0x7576_7321;
    for w in [src, dst, ports, proto] {
        h = mix(h, w);
    }
    h ^= 16;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The table entry of a client's unfragmented packet (client:cport → vip:vport), as the
/// program computes it: the words are the packet's bytes read in host order.
pub fn flow_slot(
    s: &MemberSettings,
    client: Ipv4Addr,
    cport: u16,
    vport: u16,
    table_size: u32,
) -> usize {
    let h = match s.hash {
        MemberHash::Source => flow_hash(u32::from_ne_bytes(client.octets()), 0, 0, 0),
        MemberHash::FiveTuple => {
            let mut p = [0u8; 4];
            p[..2].copy_from_slice(&cport.to_be_bytes());
            p[2..].copy_from_slice(&vport.to_be_bytes());
            flow_hash(
                u32::from_ne_bytes(client.octets()),
                u32::from_ne_bytes(s.vip.octets()),
                u32::from_ne_bytes(p),
                u32::from(s.proto),
            )
        }
    };
    ((u64::from(h) * u64::from(table_size)) >> 32) as usize
}

struct Published {
    half: u32,
    arp_owner: u16,
}

/// The member filter attached to one interface. Detaches on drop (a BPF link, so also
/// when the process dies).
pub struct MemberProgram {
    // Declared first so the link is closed (detached) before the object.
    link: Option<OwnedFd>,
    obj: NonNull<bpf::bpf_object>,
    prog_fd: RawFd,
    cfg_fd: RawFd,
    table_fd: RawFd,
    stats_fd: RawFd,
    ncpus: usize,
    settings: MemberSettings,
    published: Mutex<Option<Published>>,
    label: String,
    mode: XdpMode,
    /// The index of the interface it is attached to (0 until attached).
    ifindex: u32,
}

// SAFETY: as `program::LoadedObject`: the object pointer is only used by libbpf in `load`
// and `Drop` (exclusive access); every other method is a `bpf()` syscall on an fd.
unsafe impl Send for MemberProgram {}
// SAFETY: see `Send`; the publication state is behind a mutex.
unsafe impl Sync for MemberProgram {}

impl MemberProgram {
    /// Loads the filter with `settings` (no table yet: frames to the VIP are dropped as
    /// `not_ready` until [`publish`](Self::publish)) and attaches it to `ifname`.
    pub fn attach(ifname: &str, mode: XdpMode, settings: MemberSettings) -> Result<Self, XskError> {
        Self::attach_with(ifname, mode, settings, &[])
    }

    /// [`attach`](Self::attach) to an interface made again (another index), the filter's
    /// counters going on from `old`'s, the filter of the interface it replaces (they share
    /// the map). The table is published again by the caller.
    pub fn attach_in_place_of(
        ifname: &str,
        mode: XdpMode,
        settings: MemberSettings,
        old: &MemberProgram,
    ) -> Result<Self, XskError> {
        Self::attach_with(ifname, mode, settings, &[("mstats", old.stats_fd)])
    }

    fn attach_with(
        ifname: &str,
        mode: XdpMode,
        settings: MemberSettings,
        reuse: &[(&str, RawFd)],
    ) -> Result<Self, XskError> {
        let ifindex = sys::ifindex(ifname)?;
        let mut p = Self::load_with(ifname, settings, reuse)?;
        let (link, got) = match mode {
            XdpMode::Auto => match link_create(p.prog_fd, ifname, ifindex, XdpMode::Native) {
                Ok(l) => (l, XdpMode::Native),
                Err(e @ (XskError::ProgramBusy { .. } | XskError::Permission { .. })) => {
                    return Err(e)
                }
                Err(e) => {
                    log::warn!("{ifname}: native XDP refused ({e}); falling back to generic mode");
                    (
                        link_create(p.prog_fd, ifname, ifindex, XdpMode::Generic)?,
                        XdpMode::Generic,
                    )
                }
            },
            m => (link_create(p.prog_fd, ifname, ifindex, m)?, m),
        };
        p.link = Some(link);
        p.mode = got;
        p.ifindex = ifindex;
        log::info!("{ifname}: uvs member filter attached in {got:?} mode");
        Ok(p)
    }

    /// Loads without attaching (tests run it with BPF_PROG_TEST_RUN).
    #[cfg(test)]
    pub(crate) fn load(label: &str, settings: MemberSettings) -> Result<Self, XskError> {
        Self::load_with(label, settings, &[])
    }

    fn load_with(
        label: &str,
        settings: MemberSettings,
        reuse: &[(&str, RawFd)],
    ) -> Result<Self, XskError> {
        if settings.table_size == 0 || settings.table_size > MEMBER_TABLE_MAX {
            return Err(XskError::ProgramLoad(io::Error::other(format!(
                "member table size {} is not in 1..={MEMBER_TABLE_MAX}",
                settings.table_size
            ))));
        }
        if settings.ports.len() > MEMBER_MAX_PORTS {
            return Err(XskError::ProgramLoad(io::Error::other(format!(
                "a member filter lists at most {MEMBER_MAX_PORTS} ports"
            ))));
        }
        let (obj, prog_fd) = open_and_load(&MEMBER_ELF.0, "uvs_member", label, None, reuse)?;
        let mut p = MemberProgram {
            link: None,
            obj,
            prog_fd,
            cfg_fd: -1,
            table_fd: -1,
            stats_fd: -1,
            ncpus: 0,
            settings,
            published: Mutex::new(None),
            label: label.to_string(),
            mode: XdpMode::Auto,
            ifindex: 0,
        };
        p.cfg_fd = map_fd(obj, "mcfg")?;
        p.table_fd = map_fd(obj, "table")?;
        p.stats_fd = map_fd(obj, "mstats")?;
        p.ncpus = possible_cpus()?;
        // The configuration goes in at once, with no table (size 0: not ready).
        p.write_cfg(0, 0, NO_OWNER)?;
        Ok(p)
    }

    /// The mode the filter runs in.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// The interface it is attached to: its name and its index then (0 if not attached).
    pub fn interface(&self) -> (&str, u32) {
        (&self.label, self.ifindex)
    }

    /// The settings it was loaded with.
    pub fn settings(&self) -> &MemberSettings {
        &self.settings
    }

    /// `struct member_cfg` of uvs_member.c, 68 bytes.
    fn write_cfg(&self, table_size: u32, half: u32, arp_owner: u16) -> Result<(), XskError> {
        let s = &self.settings;
        let mut v = [0u8; 68];
        v[0..4].copy_from_slice(&s.vip.octets());
        v[4..8].copy_from_slice(&u32::from(s.me).to_ne_bytes());
        v[8..12].copy_from_slice(&table_size.to_ne_bytes());
        v[12..16].copy_from_slice(&half.to_ne_bytes());
        v[16..20].copy_from_slice(&u32::from(arp_owner).to_ne_bytes());
        v[20] = s.proto;
        v[21] = match s.hash {
            MemberHash::FiveTuple => 0,
            MemberHash::Source => 1,
        };
        v[22..28].copy_from_slice(&s.cluster_mac);
        v[28..34].copy_from_slice(&s.own_mac);
        v[34..36].copy_from_slice(&(s.ports.len() as u16).to_ne_bytes());
        for (i, p) in s.ports.iter().enumerate() {
            v[36 + 2 * i..38 + 2 * i].copy_from_slice(&p.to_be_bytes());
        }
        let key = 0u32;
        // SAFETY: key and value are live buffers of the map's key (4) and value (68) sizes.
        let ret = unsafe {
            bpf::bpf_map_update_elem(
                self.cfg_fd,
                (&key as *const u32).cast(),
                v.as_ptr().cast(),
                bpf::BPF_ANY.into(),
            )
        };
        if ret != 0 {
            return Err(XskError::os(
                "set the member filter's configuration",
                &self.label,
                libbpf_error(ret.into()),
            ));
        }
        Ok(())
    }

    /// Publishes a lookup table (entry → member index, [`NO_OWNER`] for none; exactly
    /// `table_size` entries) and the member that answers ARP for the VIP. The table goes
    /// to the half the program does not read, then the program is switched to it, so no
    /// packet sees a mix of two tables.
    pub fn publish(&self, table: &[u16], arp_owner: Option<u16>) -> Result<(), XskError> {
        let m = self.settings.table_size;
        if table.len() != m as usize {
            return Err(XskError::os(
                "publish the member table",
                &self.label,
                io::Error::other(format!("{} entries, expected {m}", table.len())),
            ));
        }
        let mut published = self.published.lock().expect("member table lock");
        let half = published.as_ref().map_or(0, |p| 1 - p.half);
        let base = half * MEMBER_TABLE_MAX;
        let keys: Vec<u32> = (0..m).map(|i| base + i).collect();
        let values: Vec<u32> = table.iter().map(|&o| u32::from(o)).collect();
        let mut count = m;
        let opts = bpf::bpf_map_batch_opts {
            sz: std::mem::size_of::<bpf::bpf_map_batch_opts>() as _,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: keys and values hold `count` u32 each (the map's key and value size) and
        // outlive the call; `count` is read and written by libbpf.
        let ret = unsafe {
            bpf::bpf_map_update_batch(
                self.table_fd,
                keys.as_ptr().cast(),
                values.as_ptr().cast(),
                &mut count,
                &opts,
            )
        };
        if ret != 0 {
            return Err(XskError::os(
                "publish the member table",
                &self.label,
                libbpf_error(ret.into()),
            ));
        }
        let owner = arp_owner.unwrap_or(NO_OWNER);
        self.write_cfg(m, half, owner)?;
        *published = Some(Published {
            half,
            arp_owner: owner,
        });
        Ok(())
    }

    /// The member answering ARP now, if a table was published.
    pub fn arp_owner(&self) -> Option<u16> {
        let p = self.published.lock().expect("member table lock");
        p.as_ref().map(|p| p.arp_owner).filter(|&o| o != NO_OWNER)
    }

    /// The counters, summed over CPUs.
    pub fn counters(&self) -> Result<MemberCounters, XskError> {
        let read = |slot: u32| -> Result<u64, XskError> {
            let mut values = vec![0u64; self.ncpus];
            // SAFETY: `values` has room for ncpus u64 values, the per-CPU layout of a u64
            // PERCPU_ARRAY lookup.
            let ret = unsafe {
                bpf::bpf_map_lookup_elem(
                    self.stats_fd,
                    (&slot as *const u32).cast(),
                    values.as_mut_ptr().cast(),
                )
            };
            if ret != 0 {
                return Err(XskError::os(
                    "read member filter counters",
                    &self.label,
                    libbpf_error(ret.into()),
                ));
            }
            Ok(values.iter().sum())
        };
        Ok(MemberCounters {
            kept: read(0)?,
            other_member: read(1)?,
            no_member: read(2)?,
            malformed: read(3)?,
            arp_replied: read(4)?,
            arp_dropped: read(5)?,
            passed: read(6)?,
            not_ready: read(7)?,
        })
    }

    /// Runs the program once on `frame`: the XDP action and the frame as it left.
    #[cfg(test)]
    pub(crate) fn test_run(&self, frame: &[u8]) -> io::Result<(u32, Vec<u8>)> {
        let mut out = vec![0u8; frame.len() + 256];
        let mut opts = bpf::bpf_test_run_opts {
            sz: std::mem::size_of::<bpf::bpf_test_run_opts>() as _,
            data_in: frame.as_ptr().cast(),
            data_size_in: frame.len() as u32,
            data_out: out.as_mut_ptr().cast(),
            data_size_out: out.len() as u32,
            repeat: 1,
            ..Default::default()
        };
        // SAFETY: `opts` points at buffers that outlive the call, sized as stated.
        let ret = unsafe { bpf::bpf_prog_test_run_opts(self.prog_fd, &mut opts) };
        if ret != 0 {
            return Err(libbpf_error(ret.into()));
        }
        out.truncate(opts.data_size_out as usize);
        Ok((opts.retval, out))
    }
}

impl Drop for MemberProgram {
    fn drop(&mut self) {
        // Detach first, then free the program and maps.
        self.link = None;
        // SAFETY: `obj` came from `open_and_load` and is closed once, here.
        unsafe { bpf::bpf_object__close(self.obj.as_ptr()) };
    }
}

#[cfg(test)]
#[path = "member_tests.rs"]
mod tests;
