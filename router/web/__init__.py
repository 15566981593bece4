"""The HTTP edge: the app's routes and error mapping, the JSON API and the intake endpoints, all
thin over `router.core`."""
