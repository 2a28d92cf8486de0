"""Studies across runs: planning and scheduling trainings, results tables, statistics and verdicts,
figures and the report (torch only in `featuremaps`)."""
