-- Dead letters of console runs, kept durably (a restart loses none): per job at most
-- the operator's bound (`sluice serve --dead-letters-kept`), the oldest dropped first
-- and counted in dead_letter_drops. `id` orders them (time, then a sequence).
create table dead_letters (
    id text primary key,
    job_id text not null references jobs (id),
    run_id text not null,
    created_ms bigint not null,
    body text not null
);

create index dead_letters_by_job on dead_letters (job_id, id);

create table dead_letter_drops (
    job_id text primary key references jobs (id),
    dropped bigint not null
);
