//! The frame a stage works on: one value instead of a buffer, a length and a parse passed
//! side by side through every stage.

use uvs_wire::Parsed;

/// One frame on its way through the pipeline.
///
/// `buf` is the whole frame buffer (an AF_XDP chunk, or a worker's scratch frame), not just
/// the frame: encapsulation and NAT64 grow the frame in place up to `buf.len()`; SCTP's
/// address stripping and TUN's error untunnelling shrink it. `len` is the frame's length
/// in `buf` and `p` its parse, both kept in step with every rewrite (`uvs_wire`'s
/// rewrites update `p`; a stage that changes the length sets `len`).
pub struct Packet<'a> {
    pub buf: &'a mut [u8],
    pub len: usize,
    pub p: Parsed,
}

impl<'a> Packet<'a> {
    /// A parsed frame of `len` bytes at the start of `buf`.
    #[inline(always)]
    pub fn new(buf: &'a mut [u8], len: usize, p: Parsed) -> Self {
        Self { buf, len, p }
    }

    /// The frame's bytes.
    #[inline(always)]
    pub fn frame(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}
