-- Sluice metadata, portable between SQLite and PostgreSQL: ids are text
-- made by the application (time-ordered), times are ms since the epoch,
-- flags are 0/1, `{blob}` is BLOB or BYTEA.

create table users (
    id text primary key,
    name text not null unique,
    password_hash text not null,
    is_admin bigint not null,
    created_ms bigint not null
);

-- Browser sessions and API tokens; only a SHA-256 of the secret is kept.
create table credentials (
    id text primary key,
    user_id text not null references users (id),
    kind text not null,
    name text not null,
    secret_hash text not null unique,
    created_ms bigint not null,
    expires_ms bigint
);

create table projects (
    id text primary key,
    name text not null unique,
    description text not null,
    created_ms bigint not null
);

create table memberships (
    project_id text not null references projects (id),
    user_id text not null references users (id),
    role text not null,
    primary key (project_id, user_id)
);

-- Connection secrets are write-only through the API.
create table connections (
    project_id text not null references projects (id),
    name text not null,
    kind text not null,
    url text not null,
    secret text,
    properties text not null,
    updated_ms bigint not null,
    primary key (project_id, name)
);

create table jobs (
    id text primary key,
    project_id text not null references projects (id),
    name text not null,
    description text not null,
    created_ms bigint not null,
    unique (project_id, name)
);

-- Components by content hash, shared by versions (and by workers).
create table components (
    hash text primary key,
    bytes {blob} not null,
    size bigint not null
);

create table versions (
    id text primary key,
    job_id text not null references jobs (id),
    number bigint not null,
    hash text not null references components (hash),
    note text not null,
    created_ms bigint not null,
    created_by text not null,
    unique (job_id, number)
);

-- What runs when the job is started: one per job.
create table deployments (
    job_id text primary key references jobs (id),
    version_id text not null references versions (id),
    spec text not null,
    parameters text not null,
    parallelism bigint not null,
    memory_mb bigint,
    cpu_ms bigint,
    schedule text,
    updated_ms bigint not null
);

create table runs (
    id text primary key,
    job_id text not null references jobs (id),
    version_id text not null references versions (id),
    state text not null,
    restore_from text,
    start_position text,
    scheduled_ms bigint,
    started_ms bigint,
    ended_ms bigint,
    error text,
    worker text,
    created_by text not null,
    created_ms bigint not null
);

create index runs_by_job on runs (job_id, created_ms);

-- Every change (audit) and every notable thing that happened to a job.
create table events (
    id text primary key,
    project_id text,
    job_id text,
    kind text not null,
    actor text,
    action text not null,
    detail text not null,
    created_ms bigint not null
);

create index events_by_project on events (project_id, created_ms);
