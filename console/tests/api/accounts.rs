//! Sign-in, sessions, API tokens and users.

use serde_json::json;

use crate::helpers::{ADMIN_PASSWORD, PASSWORD, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_shows_who_you_are_and_sign_out_ends_the_session() {
    let app = spawn_app().await;
    let wrong = app.anonymous().post("/login", json!({ "name": "admin", "password": "nope" })).await;
    assert!(wrong.error(400).contains("wrong user name or password"));
    let unknown = app.anonymous().post("/login", json!({ "name": "nobody", "password": ADMIN_PASSWORD })).await;
    assert!(unknown.error(400).contains("wrong user name or password"));

    let cookie = app.admin.cookie().expect("signed in with a cookie");
    assert!(cookie.starts_with("sluice_session=sls_"), "{cookie}");
    let me = app.admin.get("/me").await.expect(200);
    assert_eq!(me["user"]["name"], "admin");
    assert_eq!(me["user"]["is_admin"], true);
    assert!(me["user"].get("password_hash").is_none(), "the hash never leaves the server: {me}");
    assert_eq!(me["projects"], json!([]));

    app.project("alpha").await;
    let me = app.admin.get("/me").await.expect(200);
    assert_eq!(me["projects"], json!([{ "name": "alpha", "role": "admin" }]));

    app.admin.post("/logout", json!({})).await.expect(204);
    let after = app.admin.get("/me").await;
    assert!(after.error(401).contains("sign in"), "the session cookie no longer works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_token_works_as_a_bearer_until_it_is_deleted() {
    let app = spawn_app().await;
    let created = app.admin.post("/tokens", json!({ "name": "ci" })).await.expect(201);
    let token = created["token"].as_str().expect("the secret, shown once").to_owned();
    let id = created["credential"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["credential"]["name"], "ci");
    assert!(created["credential"]["expires_ms"].as_i64().is_some(), "every token expires: {created}");

    let listed = app.admin.get("/tokens").await.expect(200);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "sessions are not listed as tokens: {listed:?}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(!listed[0].to_string().contains(&token), "the secret is never listed again");

    let bearer = app.anonymous().with_token(&token);
    assert_eq!(bearer.get("/me").await.expect(200)["user"]["name"], "admin");
    let nameless = app.admin.post("/tokens", json!({ "name": "  " })).await;
    assert!(nameless.error(400).contains("name"));

    // A token can only be deleted by its owner.
    let other = app.member("other", None, "viewer").await;
    assert_eq!(other.delete(&format!("/tokens/{id}")).await.status, 404);
    assert_eq!(bearer.get("/me").await.status, 200);

    bearer.delete(&format!("/tokens/{id}")).await.expect(204);
    assert_eq!(bearer.get("/me").await.status, 401, "a deleted token stops working");
    assert_eq!(app.admin.get("/tokens").await.expect(200), json!([]));
    assert_eq!(app.admin.delete(&format!("/tokens/{id}")).await.status, 404);

    // Token events belong to no project: read them from the store.
    let audit = app
        .store
        .events(sluice_console::store::EventFilter { kind: Some("audit"), limit: 50, ..Default::default() })
        .await
        .unwrap();
    let actions: Vec<(&str, Option<&str>)> = audit.iter().map(|e| (e.action.as_str(), e.actor.as_deref())).collect();
    assert!(actions.contains(&("token.create", Some("admin"))), "{actions:?}");
    assert!(actions.contains(&("token.delete", Some("admin"))), "{actions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_admin_creates_users_who_can_then_sign_in() {
    let app = spawn_app().await;
    let created =
        app.admin.post("/users", json!({ "name": "dana", "password": PASSWORD, "is_admin": false })).await.expect(201);
    assert_eq!(created["name"], "dana");
    assert_eq!(created["is_admin"], false);
    let users = app.admin.get("/users").await.expect(200);
    let names: Vec<&str> = users.as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "dana"]);

    let again = app.admin.post("/users", json!({ "name": "dana", "password": PASSWORD })).await;
    assert!(again.error(409).contains("already exists"));
    let short = app.admin.post("/users", json!({ "name": "erin", "password": "short" })).await;
    assert!(short.error(400).contains("at least 8 characters"));
    let bad_name = app.admin.post("/users", json!({ "name": "Erin Smith", "password": PASSWORD })).await;
    assert!(bad_name.error(400).contains("lowercase letters"));

    let dana = app.anonymous().login("dana", PASSWORD).await;
    let me = dana.get("/me").await.expect(200);
    assert_eq!((me["user"]["name"].as_str(), me["user"]["is_admin"].as_bool()), (Some("dana"), Some(false)));
    assert_eq!(dana.get("/projects").await.expect(200), json!([]), "a new user sees no project");

    let audit = app
        .store
        .events(sluice_console::store::EventFilter { kind: Some("audit"), limit: 50, ..Default::default() })
        .await
        .unwrap();
    assert!(
        audit.iter().any(|e| e.action == "user.create" && e.detail == "dana" && e.actor.as_deref() == Some("admin"))
    );
}
