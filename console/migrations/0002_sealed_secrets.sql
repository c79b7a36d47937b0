-- A connection's URL, properties and secret can all hold credentials, so they are
-- sealed with the console's secret key (store/sealing.rs). Rows written before this
-- migration hold them as given (sealed = 0) and are sealed on the first start after it.
alter table connections add column sealed bigint not null default 0;

-- One value sealed with the key, to tell at start whether the key file is the one the
-- connections were sealed with.
create table secret_key_check (
    id bigint primary key,
    sealed text not null
);
