-- The case/labels database (docs/platform-contract.md §6), applied by the database owner before any
-- daemon starts. Idempotent: applying it again changes nothing. :platform_role is the user of the DSN in SSM.
-- Append-only is the database's rule, twice over: the platform role is granted only SELECT and INSERT,
-- and a trigger refuses UPDATE, DELETE and TRUNCATE for every role, the owner included.

create table if not exists dla_records (
    decision_id     text primary key,
    platform_run_id text not null,
    event_id        text not null,
    decision        text not null check (decision in ('APPROVE', 'REVIEW', 'DECLINE')),
    record          jsonb not null,
    record_sha256   text not null,
    recorded_at     timestamptz not null default now(),
    unique (platform_run_id, event_id)
);

create table if not exists cases (
    case_id         text primary key,
    platform_run_id text not null,
    decision_id     text not null unique,
    event_id        text not null,
    card_id         text not null,
    decision        text not null check (decision in ('REVIEW', 'DECLINE')),
    opened_at       timestamptz not null default now()
);

create table if not exists case_labels (
    label_id        text primary key,
    case_id         text not null references cases (case_id),
    platform_run_id text not null,
    label           text not null,
    source          text not null,
    appended_at     timestamptz not null default now(),
    unique (case_id, label)
);

create index if not exists dla_records_run on dla_records (platform_run_id);
create index if not exists cases_run on cases (platform_run_id);
create index if not exists case_labels_run on case_labels (platform_run_id);

create or replace function spine_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'append-only: % on % is refused', tg_op, tg_table_name
        using errcode = 'insufficient_privilege';
end
$$;

do $$
declare
    t text;
begin
    foreach t in array array['dla_records', 'cases', 'case_labels'] loop
        execute format('drop trigger if exists %I on %I', t || '_append_only', t);
        execute format('create trigger %I before update or delete on %I for each row execute function spine_append_only()',
                       t || '_append_only', t);
        execute format('drop trigger if exists %I on %I', t || '_no_truncate', t);
        execute format('create trigger %I before truncate on %I for each statement execute function spine_append_only()',
                       t || '_no_truncate', t);
    end loop;
end
$$;

revoke all on dla_records, cases, case_labels from public;
revoke all on dla_records, cases, case_labels from :"platform_role";
grant select, insert on dla_records, cases, case_labels to :"platform_role";
