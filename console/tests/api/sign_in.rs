//! Sign-in limits and the session cookie: a rate per client address, a
//! lock after wrong passwords that looks the same for unknown names, the
//! `Secure` cookie, and API tokens that expire.

use reqwest::StatusCode;
use serde_json::json;
use sluice_console::api::ApiSettings;

use crate::helpers::{ADMIN_PASSWORD, PASSWORD, spawn_app, spawn_app_with_api};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_lock_the_name_known_or_not_until_an_admin_resets_it() {
    let app = spawn_app().await;
    app.member("lea", None, "viewer").await;
    let nobody = app.anonymous();
    for name in ["lea", "no-such-user"] {
        for attempt in 1..=4 {
            let wrong = nobody.post("/login", json!({ "name": name, "password": "wrong-password" })).await;
            assert_eq!(wrong.error(400), "wrong user name or password", "{name}, attempt {attempt}");
        }
        let fifth = nobody.post("/login", json!({ "name": name, "password": "wrong-password" })).await;
        assert_eq!(fifth.status, 429, "{name}: {}", fifth.text);
        let locked = fifth.error(429);
        assert!(locked.contains("this account is locked for 15 more minute(s) after 5 wrong passwords"), "{locked}");
    }
    // Locked: even the right password is refused, with the same words.
    let right = nobody.post("/login", json!({ "name": "lea", "password": PASSWORD })).await;
    assert!(right.error(429).contains("this account is locked"));
    let unknown = nobody.post("/login", json!({ "name": "no-such-user", "password": PASSWORD })).await;
    assert!(unknown.error(429).contains("this account is locked"), "no hint whether a user exists");

    // Other names are not locked; an admin's reset lifts the lock.
    nobody.login("admin", ADMIN_PASSWORD).await;
    app.admin.put("/users/lea/password", json!({ "password": "a-new-password" })).await.expect(204);
    nobody.login("lea", "a-new-password").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_from_one_address_are_rate_limited() {
    let app = spawn_app_with_api(ApiSettings { login_attempts_per_minute: 3, ..Default::default() }).await;
    // The admin's own sign-in in spawn_app was the first of three.
    let nobody = app.anonymous();
    for name in ["a", "b"] {
        nobody.post("/login", json!({ "name": name, "password": "x" })).await.error(400);
    }
    let limited = nobody.post("/login", json!({ "name": "admin", "password": ADMIN_PASSWORD })).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.error(429).contains("too many sign-in attempts from your address; try again in"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_secure_when_told_or_behind_https() {
    async fn cookie(address: &str, proto: Option<&str>) -> String {
        let mut request = reqwest::Client::new()
            .post(format!("{address}/api/v1/login"))
            .json(&json!({ "name": "admin", "password": ADMIN_PASSWORD }));
        if let Some(proto) = proto {
            request = request.header("X-Forwarded-Proto", proto);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 200);
        answer.headers()["set-cookie"].to_str().unwrap().to_owned()
    }
    let plain = spawn_app().await;
    let set = cookie(&plain.address, None).await;
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"), "{set}");
    let set = cookie(&plain.address, Some("https")).await;
    assert!(set.contains("Secure"), "behind a TLS-terminating proxy: {set}");

    let tls = spawn_app_with_api(ApiSettings { secure_cookies: true, ..Default::default() }).await;
    let set = cookie(&tls.address, None).await;
    assert!(set.contains("Secure"), "with --secure-cookies: {set}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_expire_by_default_within_the_operators_maximum() {
    let app =
        spawn_app_with_api(ApiSettings { token_default_days: 30, token_max_days: 60, ..Default::default() }).await;
    let now = sluice_console::store::now_ms();
    let day = 24 * 3600 * 1000;
    let made = app.admin.post("/tokens", json!({ "name": "default" })).await.expect(201);
    let expires = made["credential"]["expires_ms"].as_i64().expect("every token expires");
    assert!((now + 30 * day - 60_000..=now + 30 * day + 60_000).contains(&expires), "30 days: {made}");
    let longer = app.admin.post("/tokens", json!({ "name": "longer", "expires_in_days": 60 })).await.expect(201);
    assert!(longer["credential"]["expires_ms"].as_i64().unwrap() > expires);
    let too_long = app.admin.post("/tokens", json!({ "name": "forever", "expires_in_days": 61 })).await;
    assert!(too_long.error(400).contains("a token lasts 1 to 60 days"));

    // Once its time is up, a token is refused.
    let token = made["token"].as_str().unwrap();
    let bearer = app.anonymous().with_token(token);
    bearer.get("/me").await.expect(200);
    sqlx::query("update credentials set expires_ms = $1 where id = $2")
        .bind(now - 1)
        .bind(made["credential"]["id"].as_str().unwrap())
        .execute(&app.store.pool)
        .await
        .unwrap();
    assert!(bearer.get("/me").await.error(401).contains("sign in"));
}
