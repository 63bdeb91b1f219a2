"""The running bot: the pipeline, the schedule, the wiring and reload."""
