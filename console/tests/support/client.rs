//! An HTTP client of the console acting as one user (or nobody), and a raw
//! exchange that shows whether the server read a body before answering.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// An answer: its status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub text: String,
    /// `METHOD path`, for messages.
    pub what: String,
}

impl Answer {
    /// The answer's JSON after checking its status (null for an empty body).
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "{} answered {}: {}", self.what, self.status, self.text);
        if self.text.is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.what, self.text))
    }

    /// The `error` message of a refusal with `status`.
    #[track_caller]
    pub fn error(self, status: u16) -> String {
        let what = self.what.clone();
        let body = self.expect(status);
        body["error"].as_str().unwrap_or_else(|| panic!("{what}: no `error` in {body}")).to_owned()
    }

    /// Asserts a refusal with `status` whose message holds every one of `parts`.
    #[track_caller]
    pub fn refused(self, status: u16, parts: &[&str]) -> String {
        let what = self.what.clone();
        let message = self.error(status);
        for part in parts {
            assert!(message.contains(part), "{what}: the refusal does not say `{part}`: {message}");
        }
        message
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    pub address: String,
    /// `sluice_session=…`, once signed in.
    cookie: Option<String>,
}

impl Client {
    pub fn anonymous(address: &str) -> Client {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("an HTTP client");
        Client { http, address: address.to_owned(), cookie: None }
    }

    /// Signs in with the password; the client then sends the session cookie.
    pub async fn login(&self, name: &str, password: &str) -> Client {
        let answer = self
            .http
            .post(format!("{}/api/v1/login", self.address))
            .json(&serde_json::json!({ "name": name, "password": password }))
            .send()
            .await
            .expect("the console answers");
        assert_eq!(answer.status(), StatusCode::OK, "sign-in of {name}");
        let cookie = answer
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("sluice_session="))
            .and_then(|v| v.split(';').next())
            .expect("a session cookie")
            .to_owned();
        Client { cookie: Some(cookie), ..self.clone() }
    }

    /// The `Cookie:` header line of a signed-in client, for raw requests.
    pub fn cookie_header(&self) -> String {
        format!("Cookie: {}", self.cookie.as_deref().expect("signed in"))
    }

    async fn send(&self, what: String, request: reqwest::RequestBuilder) -> Answer {
        let request = match &self.cookie {
            Some(cookie) => request.header(reqwest::header::COOKIE, cookie),
            None => request,
        };
        let answer = request.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = answer.status();
        Answer { status, text: answer.text().await.unwrap_or_default(), what }
    }

    /// `method` on a path under `/api/v1`, with a JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self.http.request(method.clone(), format!("{}/api/v1{path}", self.address));
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(format!("{method} {path}"), request).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }

    /// POSTs a component's bytes to a path under `/api/v1`.
    pub async fn post_bytes(&self, path: &str, bytes: Vec<u8>) -> Answer {
        let request = self
            .http
            .post(format!("{}/api/v1{path}", self.address))
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(bytes);
        self.send(format!("POST {path}"), request).await
    }

    /// GET of a path outside the API (`/healthz`, `/metrics`, …).
    pub async fn get_raw(&self, path: &str) -> Answer {
        self.send(format!("GET {path}"), self.http.get(format!("{}{path}", self.address))).await
    }
}

#[path = "../support/raw_http.rs"]
mod raw_http;
pub use raw_http::raw_post;
