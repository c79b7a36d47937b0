//! Issue 16, item 6: role boundaries. Starting a job is an operator's
//! power, and a cron schedule starts it; resources are what a job may take
//! from the shared platform, as is the project's quota. A developer can do
//! none of it, nor raise their own role, nor touch users.

use serde_json::{Value, json};

use crate::platform::{Platform, spec_with_sink};

const DEPLOYMENT: &str = "/projects/a/jobs/j/deployment";
const JOB: &str = "/projects/a/jobs/j";

/// A valid deployment of job `j` (its file into a memory sink) with the
/// operator's `settings` laid over it.
fn deployment_with(settings: Value) -> Value {
    let mut body = json!({ "spec": spec_with_sink("kind = \"memory\"") });
    body.as_object_mut().unwrap().extend(settings.as_object().unwrap().clone());
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_developer_cannot_start_schedule_or_size_a_job_nor_raise_their_role() {
    let platform = Platform::start().await;
    let b_before = platform.b_ledger().await;
    let users_before = platform.users().await;
    let dev = &platform.dev;
    // What a developer may do: save what runs.
    dev.put(DEPLOYMENT, deployment_with(json!({}))).await.expect(200);

    // When and with how much it runs is an operator's.
    let operator_settings = [
        (json!({ "schedule": "* * * * * *" }), "changing the schedule"),
        (json!({ "parallelism": 64 }), "changing parallelism"),
        (json!({ "memory_mb": 4096 }), "changing memory_mb"),
        (json!({ "cpu_ms": 60000 }), "changing cpu_ms"),
        (json!({ "schedule": "0 * * * * *", "memory_mb": 4096 }), "changing the schedule, memory_mb"),
    ];
    for (settings, what) in operator_settings {
        let refused = dev.put(DEPLOYMENT, deployment_with(settings)).await;
        refused.refused(403, &[what, "needs the operator role in project `a`; you are developer"]);
    }
    let limits = json!({ "spec": format!("{}\n[limits]\ncpu_per_batch = \"60s\"\nmemory_mb = 4096\n",
        spec_with_sink("kind = \"memory\"")) });
    dev.put(DEPLOYMENT, limits).await.refused(403, &["changing the spec's [limits] needs the operator role"]);

    // Starting, now or later, and every other operation of a run.
    let operator = "needs the operator role in project `a`; you are developer";
    let operations = [
        ("/start", json!({ "restore": "none" })),
        ("/start", json!({ "restore": "none", "at": "2030-01-01T00:00:00Z" })),
        ("/stop", json!({ "snapshot": false })),
        ("/snapshots", json!({})),
        ("/restore", json!({ "snapshot": "latest" })),
        ("/upgrade", json!({ "version": 1 })),
        ("/rescale", json!({ "parallelism": 1 })),
        ("/parameters", json!({ "parameters": { "since_ms": "0" } })),
    ];
    for (action, body) in operations {
        dev.post(&format!("{JOB}{action}"), body).await.refused(403, &[operator]);
    }

    // How much of the platform the project may take is the platform's:
    // neither its developer nor its admin raises its quota.
    let quota = json!({ "max_tasks": 1000, "max_memory_mb": 1000000, "max_debug_runs": 100 });
    for client in [dev, &platform.a_admin] {
        client
            .put("/projects/a/quota", quota.clone())
            .await
            .refused(403, &["setting a project's quota needs a global admin"]);
    }

    // Their own role, other projects, users.
    let a_admin = "needs the admin role in project `a`; you are developer";
    dev.put("/projects/a/members/mallory", json!({ "role": "admin" })).await.refused(403, &[a_admin]);
    dev.put("/projects/a/members/padma", json!({ "role": "viewer" })).await.refused(403, &[a_admin]);
    dev.delete("/projects/a/members/padma").await.refused(403, &[a_admin]);
    let not_b = "you are not a member of project `b`";
    dev.put("/projects/b/members/mallory", json!({ "role": "admin" })).await.refused(403, &[not_b]);
    let global = "needs a global admin";
    let user = json!({ "name": "eve", "password": "long enough password", "is_admin": true });
    dev.post("/users", user).await.refused(403, &[global]);
    dev.post("/projects", json!({ "name": "c" })).await.refused(403, &[global]);
    dev.patch("/users/admin", json!({ "disabled": true })).await.refused(403, &[global]);
    dev.put("/users/admin/password", json!({ "password": "taken over now" })).await.refused(403, &[global]);
    dev.delete("/users/admin/credentials").await.refused(403, &[global]);
    dev.get("/users").await.refused(403, &[global]);

    // Nothing took effect: no run, the deployment as the developer saved it.
    let job = platform.admin.get(JOB).await.expect(200);
    assert!(job["run"].is_null(), "the job never ran: {job}");
    let deployment = &job["deployment"];
    assert_eq!((&deployment["schedule"], &deployment["parallelism"]), (&Value::Null, &json!(1)), "{job}");
    assert_eq!((&deployment["memory_mb"], &deployment["cpu_ms"]), (&Value::Null, &Value::Null), "{job}");
    let members = platform.admin.get("/projects/a").await.expect(200);
    let roles: Vec<(String, String)> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (m["user"].as_str().unwrap_or_default().to_owned(), m["role"].as_str().unwrap_or_default().to_owned()))
        .collect();
    assert!(roles.contains(&("padma".into(), "admin".into())), "{members}");
    assert_eq!(platform.users().await, users_before, "the users are as they were");
    let quota = platform.admin.get("/projects/a/quota").await.expect(200);
    assert_eq!(quota["own"], json!({ "max_tasks": null, "max_memory_mb": null, "max_debug_runs": null }), "{quota}");
    // The admin's session still works.
    platform.admin.get("/me").await.expect(200);
    platform.assert_dev_has_no_more_power().await;
    platform.assert_b_kept_producing(&b_before).await;
}
