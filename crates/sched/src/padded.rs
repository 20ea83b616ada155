//! Cache-line padding for atomics that several workers write (STYLE: counters are cache-line
//! padded), so a cursor shares its line with nothing else.

use std::ops::Deref;

#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct CachePadded<T>(T);

impl<T> CachePadded<T> {
    pub(crate) const fn new(v: T) -> Self {
        CachePadded(v)
    }
}

impl<T> Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
