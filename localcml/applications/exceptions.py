"""Errors of the applications service, as CML answers them."""

from __future__ import annotations

from localcml.core.errors import ALREADY_EXISTS, ApiError, invalid


def subdomain_taken(subdomain: str) -> ApiError:
    return ApiError(ALREADY_EXISTS, f"subdomain {subdomain!r} is already used by another application")


def bad_subdomain(subdomain: str) -> ApiError:
    return invalid(
        f"subdomain {subdomain!r} must be 1-63 lowercase letters, digits and '-', not starting or ending with '-'"
    )


def reserved_subdomain(subdomain: str) -> ApiError:
    return invalid(f"subdomain {subdomain!r} is reserved by the workspace (its model and metrics services)")
