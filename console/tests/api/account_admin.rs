//! Accounts over their life: changing one's password, signing out
//! everywhere, and a global admin resetting a password, disabling a user
//! and revoking its sessions and tokens.

use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_changes_its_password_which_ends_its_other_sessions() {
    let app = spawn_app().await;
    let here = app.member("pia", None, "viewer").await;
    let elsewhere = app.anonymous().login("pia", PASSWORD).await;
    let token =
        here.post("/tokens", json!({ "name": "script" })).await.expect(201)["token"].as_str().unwrap().to_owned();

    let wrong = here.post("/me/password", json!({ "old_password": "not-it", "new_password": "another-one" })).await;
    assert_eq!(wrong.error(400), "the old password is wrong");
    let short = here.post("/me/password", json!({ "old_password": PASSWORD, "new_password": "short" })).await;
    assert!(short.error(400).contains("at least 8 characters"));
    here.post("/me/password", json!({ "old_password": PASSWORD, "new_password": "another-one" })).await.expect(204);

    here.get("/me").await.expect(200);
    assert!(elsewhere.get("/me").await.error(401).contains("sign in"), "the other session ended");
    app.anonymous().with_token(&token).get("/me").await.expect(200);
    let old = app.anonymous().post("/login", json!({ "name": "pia", "password": PASSWORD })).await;
    assert_eq!(old.error(400), "wrong user name or password");
    app.anonymous().login("pia", "another-one").await;

    // Signing out everywhere ends every session, this one too; tokens stay.
    let ended = here.delete("/me/sessions").await.expect(200);
    assert_eq!(ended["ended"], 2, "{ended}");
    assert_eq!(here.get("/me").await.status, 401);
    app.anonymous().with_token(&token).get("/me").await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_admin_resets_disables_and_revokes() {
    let app = spawn_app().await;
    let user = app.member("ute", None, "viewer").await;
    let other = app.member("otto", None, "viewer").await;
    let token = user.post("/tokens", json!({ "name": "ci" })).await.expect(201)["token"].as_str().unwrap().to_owned();
    let bearer = app.anonymous().with_token(&token);

    // Only a global admin.
    for answer in [
        other.put("/users/ute/password", json!({ "password": "a-new-password" })).await,
        other.call(reqwest::Method::PATCH, "/users/ute", Some(json!({ "disabled": true }))).await,
        other.delete("/users/ute/credentials").await,
    ] {
        assert_eq!(answer.error(403), "this needs a global admin");
    }
    assert!(
        app.admin
            .put("/users/nobody/password", json!({ "password": "a-new-password" }))
            .await
            .error(404)
            .contains("no user named `nobody`")
    );

    // A reset password: the old one and the user's sessions stop working.
    app.admin.put("/users/ute/password", json!({ "password": "a-new-password" })).await.expect(204);
    assert_eq!(user.get("/me").await.status, 401);
    let user = app.anonymous().login("ute", "a-new-password").await;

    // Disabled: no sign-in, no session, no token.
    let disabled =
        app.admin.call(reqwest::Method::PATCH, "/users/ute", Some(json!({ "disabled": true }))).await.expect(200);
    assert_eq!(disabled["disabled"], true);
    assert_eq!(user.get("/me").await.status, 401);
    assert_eq!(bearer.get("/me").await.status, 401);
    let refused = app.anonymous().post("/login", json!({ "name": "ute", "password": "a-new-password" })).await;
    assert_eq!(refused.error(403), "the account `ute` is disabled; ask a global admin");
    let users = app.admin.get("/users").await.expect(200);
    assert!(users.as_array().unwrap().iter().any(|u| u["name"] == "ute" && u["disabled"] == true), "{users}");
    let me = app.admin.call(reqwest::Method::PATCH, "/users/admin", Some(json!({ "disabled": true }))).await;
    assert!(me.error(400).contains("you cannot disable your own account"));

    // Enabled again, then every credential revoked at once.
    app.admin.call(reqwest::Method::PATCH, "/users/ute", Some(json!({ "disabled": false }))).await.expect(200);
    let user = app.anonymous().login("ute", "a-new-password").await;
    let token = user.post("/tokens", json!({ "name": "ci" })).await.expect(201)["token"].as_str().unwrap().to_owned();
    let revoked = app.admin.delete("/users/ute/credentials").await.expect(200);
    assert_eq!(revoked["ended"], 2, "a session and a token: {revoked}");
    assert_eq!(user.get("/me").await.status, 401);
    assert_eq!(app.anonymous().with_token(&token).get("/me").await.status, 401);

    let audit = app
        .store
        .events(sluice_console::store::EventFilter { kind: Some("audit"), limit: 50, ..Default::default() })
        .await
        .unwrap();
    for action in ["user.password_reset", "user.disable", "user.enable", "user.revoke"] {
        assert!(audit.iter().any(|e| e.action == action && e.actor.as_deref() == Some("admin")), "{action}");
    }
}
