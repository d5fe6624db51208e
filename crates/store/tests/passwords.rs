//! A new password replaces the old hash and ends the user's sessions but the one kept, only in
//! its tenant, on SQLite and on PostgreSQL.

use dialboard_store::access::{Role, User};
use dialboard_store::pg::{cluster::Cluster, PgStore};
use dialboard_store::sqlite::{Options, SqliteStore};
use dialboard_store::{Store, TenantSettings};
use std::sync::Arc;

fn user(id: &str, tenant_id: i64) -> User {
    User {
        id: id.into(),
        tenant_id,
        email: "ana@acme.test".into(),
        role: Role::Viewer,
        agent_id: None,
        teams: vec![],
        created_at: 0,
    }
}

async fn check(store: Arc<dyn Store>) {
    let (a, b) = (
        store.create_tenant("a", TenantSettings::new("UTC")).await.unwrap().id,
        store.create_tenant("b", TenantSettings::new("UTC")).await.unwrap().id,
    );
    let (ana, namesake) = (user("u1", a), user("u2", b));
    store.create_user(ana.clone(), "old".into()).await.unwrap();
    store.create_user(namesake.clone(), "theirs".into()).await.unwrap();
    let far = i64::MAX / 2;
    let (kept, ended, other) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    store.create_session(kept, &ana, far).await.unwrap();
    store.create_session(ended, &ana, far).await.unwrap();
    store.create_session(other, &namesake, far).await.unwrap();

    assert!(store.set_password(a, "u1", "new".into(), Some(kept)).await.unwrap());
    let hash = |tenant| {
        let store = store.clone();
        async move { store.user_by_email(tenant, "ana@acme.test").await.unwrap().unwrap().1 }
    };
    assert_eq!(
        (hash(a).await, hash(b).await),
        ("new".to_string(), "theirs".to_string())
    );
    assert!(store.session(kept, 0).await.unwrap().is_some());
    assert!(store.session(ended, 0).await.unwrap().is_none());
    assert!(
        store.session(other, 0).await.unwrap().is_some(),
        "another tenant's user is untouched"
    );

    assert!(store.set_password(a, "u1", "newer".into(), None).await.unwrap());
    assert!(
        store.session(kept, 0).await.unwrap().is_none(),
        "a reset ends every session"
    );
    assert!(
        !store.set_password(a, "u2", "x".into(), None).await.unwrap(),
        "not a user of tenant a"
    );
    assert_eq!(hash(b).await, "theirs");
    store.shutdown().await;
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sqlite_sets_passwords_and_ends_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db"), Options::not_durable()).unwrap();
    runtime().block_on(check(Arc::new(store)));
}

#[test]
fn postgres_sets_passwords_and_ends_sessions() {
    let cluster = Cluster::start(false).expect("a throwaway PostgreSQL cluster starts");
    let url = cluster.create_database().unwrap();
    let store = PgStore::open(&url).unwrap();
    runtime().block_on(check(Arc::new(store)));
}
