"""Background work: the job queue, the jobs, the schedule and shared metrics."""
