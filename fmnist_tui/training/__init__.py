"""Training with torch: models, the trainer and its state, recipe (schedule and augmentation),
checkpoints, multi-process training and evaluation. Everything that imports torch lives here or in
`deploy.export` and `study.featuremaps`."""
