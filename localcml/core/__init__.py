"""Shared base of the local workspace services: the API spec, errors, state, paging, request bodies, HTTP server."""
