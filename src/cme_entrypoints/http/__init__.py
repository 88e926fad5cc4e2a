"""The Starlette HTTP entrypoint: routes, problem details, and the app factory."""
