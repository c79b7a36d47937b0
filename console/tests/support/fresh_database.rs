//! A PostgreSQL database of one test's own on the local server, named
//! `<prefix>_<pid>_<nanos>`; `remove` drops it (with its connections).

use sluice_tests::services::postgres_url;

pub struct FreshDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl FreshDatabase {
    pub async fn create(prefix: &str) -> FreshDatabase {
        let test_url = postgres_url();
        let server = test_url.rsplit_once('/').expect("a database URL").0.to_owned();
        let admin_url = format!("{server}/postgres");
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("{prefix}_{}_{nanos}", std::process::id());
        let admin = sqlx::PgPool::connect(&admin_url).await.expect("the postgres database");
        sqlx::query(&format!("create database {name}")).execute(&admin).await.expect("create database");
        admin.close().await;
        FreshDatabase { url: format!("{server}/{name}"), admin_url, name }
    }

    pub async fn remove(self) {
        let admin = sqlx::PgPool::connect(&self.admin_url).await.expect("the postgres database");
        sqlx::query(&format!("drop database if exists {} with (force)", self.name))
            .execute(&admin)
            .await
            .expect("drop database");
    }
}
