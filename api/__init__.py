"""aiohttp read API, admin API, SSE feed, metrics and OpenAPI."""
