-- 盘宝's side, for demos and tests: the order table the compensation job
-- compares with (the source of record: the latest version of every order,
-- the order document as JSON), and the post-loan repayment status.

CREATE TABLE IF NOT EXISTS pb_order (
    order_id varchar(20) NOT NULL,
    user_id bigint NOT NULL,
    gmt_modified bigint NOT NULL,
    payload jsonb NOT NULL,
    PRIMARY KEY (order_id)
);

CREATE TABLE IF NOT EXISTS pb_repayment_status (
    order_id varchar(20) NOT NULL,
    period integer NOT NULL,
    user_id bigint,
    status varchar(16) NOT NULL,
    repaid_amount numeric(18,2),
    repaid_time bigint,
    updated_at bigint NOT NULL,
    PRIMARY KEY (order_id, period)
);
