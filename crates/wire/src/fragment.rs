//! IPv4 fragmentation as a router does it (RFC 791 §3.2, "An Example Fragmentation
//! Procedure"): a packet without DF that does not fit a link is cut into fragments that do.
//! TUN needs it: a client's packet without DF (a UDP datagram the client fragmented to
//! 1500 bytes) no longer fits a 1500-byte link once encapsulated, and IPVS lets the kernel
//! fragment it rather than drop it. uvs cuts the inner packet, so every fragment is a whole
//! tunnel packet the real server decapsulates, then reassembles.
//!
//! Later fragments keep the header's length; options without the copy flag become NOPs in
//! them, as Linux's `ip_options_fragment` writes them.

use crate::ipv4::{Ipv4Packet, HEADER_LEN};

/// How one IPv4 packet is cut: its header length, total length and the data bytes per
/// fragment (a multiple of 8), with the packet's own fragment offset and MF flag (a
/// fragment may be cut again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    hl: usize,
    total: usize,
    step: usize,
    offset: usize,
    more: bool,
}

impl Cut {
    /// The cut of the IPv4 packet at the start of `ip` into fragments of at most `max_len`
    /// bytes each, or `None`: it fits already, has DF set, is malformed, or `max_len` leaves
    /// less than 8 bytes of data after its header.
    pub fn new(ip: &[u8], max_len: usize) -> Option<Cut> {
        let p = Ipv4Packet::new_checked(ip).ok()?;
        if p.version() != 4 || p.dont_frag() {
            return None;
        }
        let (hl, total) = (p.header_len(), usize::from(p.total_len()));
        if total <= max_len {
            return None;
        }
        let step = max_len.checked_sub(hl)? & !7;
        if step < 8 {
            return None;
        }
        Some(Cut {
            hl,
            total,
            step,
            offset: usize::from(p.frag_offset()),
            more: p.more_frags(),
        })
    }

    /// How many fragments the packet becomes (at least 2).
    pub fn count(&self) -> usize {
        (self.total - self.hl).div_ceil(self.step)
    }

    /// Writes fragment `k` (1 ≤ k < `count`) of `ip`, the packet this cut was made for, at
    /// the start of `out`: the header (options without the copy flag as NOPs), its data.
    /// Returns its length, or `None` when `k` is out of range or `out` too small.
    pub fn write_later(&self, ip: &[u8], k: usize, out: &mut [u8]) -> Option<usize> {
        if k == 0 || k >= self.count() || ip.len() < self.total {
            return None;
        }
        let start = self.hl + k * self.step;
        let data = (self.total - start).min(self.step);
        let len = self.hl + data;
        let out = out.get_mut(..len)?;
        out[..self.hl].copy_from_slice(&ip[..self.hl]);
        out[self.hl..].copy_from_slice(&ip[start..start + data]);
        nop_uncopied_options(&mut out[HEADER_LEN..self.hl]);
        let last = k + 1 == self.count();
        self.finish(out, len, self.offset + k * self.step, !last || self.more);
        Some(len)
    }

    /// Cuts `ip`, the packet this cut was made for, to its first fragment in place (write
    /// the later ones first). Returns its length.
    pub fn keep_first(&self, ip: &mut [u8]) -> usize {
        let len = self.hl + self.step;
        self.finish(ip, len, self.offset, true);
        len
    }

    fn finish(&self, ip: &mut [u8], len: usize, offset: usize, more: bool) {
        let mut p = Ipv4Packet::new_unchecked(&mut ip[..len]);
        p.set_total_len(len as u16);
        p.set_frag(false, more, offset as u16);
        p.fill_checksum();
    }
}

/// Options without the copy flag (bit 0x80 of the type) overwritten with NOPs: they belong
/// to the first fragment only (RFC 791 §3.1).
fn nop_uncopied_options(opts: &mut [u8]) {
    const EOL: u8 = 0;
    const NOP: u8 = 1;
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            EOL => return,
            NOP => i += 1,
            t => {
                let len = opts
                    .get(i + 1)
                    .map_or(opts.len() - i, |&l| usize::from(l).max(2));
                let end = (i + len).min(opts.len());
                if t & 0x80 == 0 {
                    opts[i..end].fill(NOP);
                }
                i = end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum;

    /// An IPv4 UDP datagram of `data` payload bytes with `opts` (a multiple of 4), DF as
    /// given, itself fragment `offset` with MF `more`.
    fn packet(data: usize, opts: &[u8], df: bool, offset: u16, more: bool) -> Vec<u8> {
        let hl = HEADER_LEN + opts.len();
        let mut b = vec![0u8; hl + data];
        for (i, x) in b[hl..].iter_mut().enumerate() {
            *x = (i % 251) as u8;
        }
        b[HEADER_LEN..hl].copy_from_slice(opts);
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_version_and_header_len(hl);
        p.set_total_len((hl + data) as u16);
        p.set_ident(0x1234);
        p.set_frag(df, more, offset);
        p.set_ttl(64);
        p.set_protocol(17);
        p.set_src_addr([198, 18, 0, 2]);
        p.set_dst_addr([198, 18, 100, 1]);
        p.fill_checksum();
        b
    }

    /// Cuts `b` at `max_len` and returns each fragment's (offset, MF, data).
    fn cut_all(b: &[u8], max_len: usize) -> Vec<(usize, bool, Vec<u8>)> {
        let cut = Cut::new(b, max_len).expect("cut");
        let mut frags = Vec::new();
        for k in 1..cut.count() {
            let mut out = vec![0u8; 4096];
            let n = cut.write_later(b, k, &mut out).unwrap();
            frags.push(out[..n].to_vec());
        }
        let mut first = b.to_vec();
        let n = cut.keep_first(&mut first);
        frags.insert(0, first[..n].to_vec());
        frags
            .iter()
            .map(|f| {
                assert!(f.len() <= max_len, "{} > {max_len}", f.len());
                let p = Ipv4Packet::new_checked(&f[..]).unwrap();
                assert!(checksum::verify(&f[..p.header_len()]), "header checksum");
                assert!(!p.dont_frag());
                assert_eq!(p.ident(), 0x1234);
                assert_eq!(usize::from(p.total_len()), f.len());
                (
                    usize::from(p.frag_offset()),
                    p.more_frags(),
                    p.payload().to_vec(),
                )
            })
            .collect()
    }

    #[test]
    fn a_datagram_is_cut_into_fragments_that_reassemble() {
        let b = packet(2980, &[], false, 0, false);
        let frags = cut_all(&b, 1480);
        assert_eq!(frags.len(), 3);
        let mut whole = Vec::new();
        for (i, (off, more, data)) in frags.iter().enumerate() {
            assert_eq!(*off, whole.len());
            assert_eq!(*more, i + 1 < frags.len());
            if *more {
                assert_eq!(data.len() % 8, 0);
            }
            whole.extend_from_slice(data);
        }
        assert_eq!(whole, b[HEADER_LEN..]);
    }

    #[test]
    fn a_fragment_is_cut_again_keeping_its_offset_and_mf() {
        for more in [true, false] {
            let b = packet(1480, &[], false, 2960, more);
            let frags = cut_all(&b, 1000);
            assert_eq!(frags.len(), 2);
            assert_eq!((frags[0].0, frags[0].1), (2960, true));
            assert_eq!((frags[1].0, frags[1].1), (2960 + 976, more));
            assert_eq!(frags[0].2.len() + frags[1].2.len(), 1480);
        }
    }

    #[test]
    fn later_fragments_copy_only_the_options_with_the_copy_flag() {
        // Record route (7, not copied), 7 bytes; a copied option (0x94, router alert), 4
        // bytes; EOL.
        let opts = [7, 7, 4, 0, 0, 0, 0, 0x94, 4, 0, 0, 0];
        let b = packet(2000, &opts, false, 0, false);
        let cut = Cut::new(&b, 1500).unwrap();
        let mut out = vec![0u8; 2048];
        let n = cut.write_later(&b, 1, &mut out).unwrap();
        assert_eq!(
            &out[HEADER_LEN..HEADER_LEN + 12],
            &[1, 1, 1, 1, 1, 1, 1, 0x94, 4, 0, 0, 0]
        );
        assert!(checksum::verify(&out[..HEADER_LEN + 12]));
        assert_eq!(n, HEADER_LEN + 12 + (2000 - (1500 - 32) / 8 * 8));
    }

    #[test]
    fn nothing_is_cut_with_df_when_it_fits_or_without_room() {
        assert_eq!(Cut::new(&packet(2000, &[], true, 0, false), 1500), None);
        assert_eq!(Cut::new(&packet(1000, &[], false, 0, false), 1500), None);
        assert_eq!(Cut::new(&packet(2000, &[], false, 0, false), 27), None);
        assert_eq!(Cut::new(&[0x45, 0, 0], 1500), None);
        let b = packet(2000, &[], false, 0, false);
        let cut = Cut::new(&b, 1500).unwrap();
        let mut out = [0u8; 100];
        assert_eq!(cut.write_later(&b, 1, &mut out), None, "out too small");
        assert_eq!(
            cut.write_later(&b, 2, &mut [0u8; 2048]),
            None,
            "no such fragment"
        );
    }
}
