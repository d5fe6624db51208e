//! The PostgreSQL store.

/// A PostgreSQL client or transaction, seen through the shared SQL surface (`crate::sql`).
pub struct Pg<'a, C>(pub &'a mut C);
