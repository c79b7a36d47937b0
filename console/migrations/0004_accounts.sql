-- A disabled user cannot sign in, and its sessions and API tokens stop working.
alter table users add column disabled bigint not null default 0;
