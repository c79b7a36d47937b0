-- At most one active run per job, held by the store itself: two consoles,
-- or an API start racing a cron start, cannot both create one (a check
-- before an insert could). Runs an earlier version left active twice end
-- first: all but the newest of a job's active runs become failed.
update runs set state = 'failed', error = 'ended when runs became one per job: a newer run of the job was active'
 where state in ('scheduled', 'starting', 'running', 'stopping')
   and id <> (select max(newer.id) from runs newer
               where newer.job_id = runs.job_id
                 and newer.state in ('scheduled', 'starting', 'running', 'stopping'));
create unique index runs_one_active_per_job on runs (job_id)
 where state in ('scheduled', 'starting', 'running', 'stopping');
