//! What the store tests that run on both backends share: one throwaway PostgreSQL cluster per
//! test binary, a runtime, and the two ways to open a store on one database.

use dialboard_store::pg::cluster::Cluster;
use dialboard_store::pg::PgStore;
use dialboard_store::sqlite::{Options, SqliteStore};
use dialboard_store::Store;
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Opens a store on the case's database (again: a second node, or after a reopen).
pub type Open<'a> = &'a dyn Fn() -> Arc<dyn Store>;

pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::start(false).expect("a throwaway PostgreSQL cluster starts"))
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `case` on a fresh SQLite file, then on a fresh PostgreSQL database. A SQLite file has
/// one store at a time (`SqliteStore::open` refuses a second): there, "a second node" is the
/// store already open, and a store is opened again once every handle of the last one is gone.
pub fn each_store(case: fn(Open)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let open: Mutex<Weak<SqliteStore>> = Mutex::new(Weak::new());
    case(&|| -> Arc<dyn Store> {
        let mut open = open.lock().unwrap();
        if let Some(store) = open.upgrade() {
            return store;
        }
        let store = Arc::new(SqliteStore::open(&path, Options::not_durable()).unwrap());
        *open = Arc::downgrade(&store);
        store
    });
    let url = cluster().create_database().unwrap();
    case(&|| -> Arc<dyn Store> { Arc::new(PgStore::open(&url).unwrap()) });
}
