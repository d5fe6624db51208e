//! The Fx hash (rustc's) for maps keyed by cell keys and result rows: the keys are produced by
//! the engine from a tenant's own records, so SipHash's flooding resistance buys nothing on
//! these hot paths (ingest, and every cell a query reads).

use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Whole words straight from the slice; only the tail is copied (a copy of a variable
        // length is a call to memcpy, which cost more than the hashing on every chunk).
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.write_u64(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let mut word = [0u8; 8];
            word[..tail.len()].copy_from_slice(tail);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    // Integers as one word each: the default goes through `write` and its tail copy, which
    // made hashing a block id (tenant, cuboid, grain, bucket) cost more than looking it up.
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64);
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }

    fn write_isize(&mut self, i: isize) {
        self.write_u64(i as u64);
    }

    /// The product's high bits depend on every input bit, its low bits only on the input's low
    /// bits, and hashbrown picks a bucket by the low bits: ids that differ in their last word's
    /// high bytes (`contact-12345`, `contact-12346`) landed in the same few buckets. The
    /// rotation brings the well-mixed high bits down (as rustc-hash 2 does).
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

pub type Fx = BuildHasherDefault<FxHasher>;
