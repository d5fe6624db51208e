//! The Bloom filter the writers keep in front of their exact checks of ids (the SQLite store's
//! key runs, `sqlite/keys.rs`; the PostgreSQL store's id indexes, `pg/id_filter.rs`).

/// A split-block Bloom filter: each key sets one bit in each of the 8 words of one 64-byte
/// block, so a lookup touches one cache line. At 12 bits a key when full it answers "maybe"
/// for ~0.5% of absent keys, far fewer while it has room.
#[derive(PartialEq)]
pub struct Filter {
    blocks: Vec<Block>,
    keys: usize,
    capacity: usize,
}

/// A block on a cache line of its own: a `[u64; 8]` is aligned to 8 bytes only, so 7 blocks
/// of 8 straddled two lines and a lookup of a key never seen (a cache miss once the filter
/// outgrows the caches, as it does past ~1M keys) waited for two.
#[derive(Clone, Copy, PartialEq)]
#[repr(align(64))]
struct Block([u64; 8]);

const BITS_PER_KEY: usize = 12;

impl Filter {
    pub fn with_capacity(capacity: usize) -> Filter {
        Filter::sized(capacity.max(1 << 16))
    }

    /// A filter for `capacity` keys, however few.
    pub fn sized(capacity: usize) -> Filter {
        let capacity = capacity.max(1);
        Filter {
            blocks: vec![Block([0; 8]); (capacity * BITS_PER_KEY).div_ceil(512)],
            keys: 0,
            capacity,
        }
    }

    fn block_and_bits(&self, hash: u64) -> (usize, u64) {
        let block = ((hash >> 32) * self.blocks.len() as u64) >> 32;
        (block as usize, hash.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    pub fn insert(&mut self, hash: u64) {
        let (block, bits) = self.block_and_bits(hash);
        for (i, word) in self.blocks[block].0.iter_mut().enumerate() {
            *word |= 1 << ((bits >> (i * 6)) & 63);
        }
        self.keys += 1;
    }

    pub fn maybe(&self, hash: u64) -> bool {
        let (block, bits) = self.block_and_bits(hash);
        self.blocks[block]
            .0
            .iter()
            .enumerate()
            .all(|(i, word)| word & (1 << ((bits >> (i * 6)) & 63)) != 0)
    }

    pub fn full(&self) -> bool {
        self.keys > self.capacity
    }

    pub fn bytes(&self) -> usize {
        self.blocks.len() * 64
    }
}
