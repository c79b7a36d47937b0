//! Answers every API operation can give, added to the OpenAPI document in
//! one place rather than on each handler: 503 (the console is busy or the
//! request took too long), 401 (no valid credential) on every route that
//! needs one, 403 and 404 on every route under a project, 400 and 413 on
//! every route that takes a body or a query.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response};

/// Routes answered without signing in.
const ANONYMOUS: [&str; 2] = ["/api/v1/login", "/api/v1/logout"];

pub fn document_common_answers(openapi: &mut OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            add(operation, "503", "The console is busy, or the request took longer than its limit");
            if !ANONYMOUS.contains(&path.as_str()) {
                add(operation, "401", "No valid session or API token");
            }
            if path.starts_with("/api/v1/projects/{p}") {
                add(
                    operation,
                    "403",
                    "Not a member of the project, or a role too low (the message names the one needed)",
                );
                add(operation, "404", "No such project, job or connection");
            }
            let has_query = operation
                .parameters
                .iter()
                .flatten()
                .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Query));
            if operation.request_body.is_some() || has_query {
                add(operation, "400", "The request is not valid; the message says what to fix");
            }
            if operation.request_body.is_some() {
                add(operation, "413", "The body is larger than the route accepts");
            }
        }
    }
}

fn add(operation: &mut Operation, status: &str, description: &str) {
    operation.responses.responses.entry(status.to_owned()).or_insert_with(|| {
        let body = Content::new(Some(Ref::from_schema_name("ErrorBody")));
        RefOr::T(Response::builder().description(description).content("application/json", body).build())
    });
}
