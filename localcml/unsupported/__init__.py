"""Operations of the API v2 spec the local workspace does not emulate: each answers HTTP 501 saying why."""
