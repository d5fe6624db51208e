//! Saved reports and dashboards on both stores: versions on every edit (concurrent edits from
//! two nodes get distinct versions), tenants and kinds apart, history gone with the item, and
//! everything kept across a reopen.

mod common;

use common::{each_store, runtime, Open};
use dialboard_store::saved::{SavedChange, SavedKind};
use dialboard_store::TenantSettings;
use serde_json::json;

const T0: i64 = 1_800_000_000;

fn versions_tenants_and_reopening(open: Open) {
    let rt = runtime();
    let store = open();
    let (acme, other) = rt.block_on(async {
        (
            store.create_tenant("acme", TenantSettings::new("UTC")).await.unwrap(),
            store.create_tenant("other", TenantSettings::new("UTC")).await.unwrap(),
        )
    });
    let report = SavedKind::Report;
    let create = SavedChange::Create {
        owner: "ann@example.com".into(),
        body: json!({"name": "v1"}),
    };
    let created = rt
        .block_on(store.change_saved(acme.id, report, create, T0))
        .unwrap()
        .item
        .unwrap();
    assert_eq!((created.version, &created.body), (1, &json!({"name": "v1"})));
    let id = created.id.clone();
    let edit = |body, author: &str| SavedChange::Update {
        id: id.clone(),
        author: author.into(),
        body,
    };
    let outcome = rt
        .block_on(store.change_saved(acme.id, report, edit(json!({"name": "v2"}), "bo@example.com"), T0 + 10))
        .unwrap();
    let item = outcome.item.unwrap();
    assert_eq!(
        (item.version, item.owner.as_str(), item.updated_at),
        (2, "ann@example.com", T0 + 10)
    );
    // Two nodes editing at once get two versions.
    let second = open();
    rt.block_on(async {
        let (a, b) = tokio::join!(
            store.change_saved(acme.id, report, edit(json!({"name": "a"}), "x"), T0 + 20),
            second.change_saved(acme.id, report, edit(json!({"name": "b"}), "y"), T0 + 20),
        );
        let mut got = [a.unwrap().item.unwrap().version, b.unwrap().item.unwrap().version];
        got.sort();
        assert_eq!(got, [3, 4]);
    });
    // The second node goes (on SQLite it is the one store: dropping a handle stops nothing).
    drop(second);
    // Another tenant and the other kind see nothing of it, and cannot change it.
    rt.block_on(async {
        assert!(store.saved_item(other.id, report, &id).await.unwrap().is_none());
        assert!(store.saved_items(other.id, report).await.unwrap().is_empty());
        assert!(store
            .saved_item(acme.id, SavedKind::Dashboard, &id)
            .await
            .unwrap()
            .is_none());
        let hijack = edit(json!({"name": "stolen"}), "eve");
        let outcome = store.change_saved(other.id, report, hijack, T0 + 30).await.unwrap();
        assert!(!outcome.changed && outcome.item.is_none());
        let gone = SavedChange::Delete { id: id.clone() };
        assert!(
            !store
                .change_saved(other.id, report, gone, T0 + 30)
                .await
                .unwrap()
                .changed
        );
    });
    rt.block_on(store.shutdown());
    drop(store);
    let store = open();
    rt.block_on(async {
        let versions = store.saved_versions(acme.id, report, &id).await.unwrap();
        assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), [4, 3, 2, 1]);
        assert_eq!(
            (versions[3].author.as_str(), &versions[3].body),
            ("ann@example.com", &json!({"name": "v1"}))
        );
        assert_eq!(
            (versions[2].author.as_str(), versions[2].created_at),
            ("bo@example.com", T0 + 10)
        );
        let current = store.saved_item(acme.id, report, &id).await.unwrap().unwrap();
        assert_eq!(current.version, 4);
        assert_eq!(current.body, versions[0].body);
        let listed = store.saved_items(acme.id, report).await.unwrap();
        assert_eq!(listed.len(), 1);
        let gone = SavedChange::Delete { id: id.clone() };
        assert!(
            store
                .change_saved(acme.id, report, gone, T0 + 40)
                .await
                .unwrap()
                .changed
        );
        assert!(store.saved_item(acme.id, report, &id).await.unwrap().is_none());
        assert!(store.saved_versions(acme.id, report, &id).await.unwrap().is_empty());
        store.shutdown().await;
    });
}

#[test]
fn saved_items_keep_versions_on_both_stores() {
    each_store(versions_tenants_and_reopening);
}
