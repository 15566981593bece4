"""The support router service: the composition root (app, CLI, workers, config, database) around
`router.core` (the domain) and `router.web` (the HTTP edge)."""
