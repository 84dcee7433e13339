"""The reproduction study: a plan (tasks x methods x seeds at a budget) run on the queue, and
a markdown report of what the seeds show."""
