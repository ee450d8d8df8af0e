"""libpq's multi-host URLs, in the form SQLAlchemy reads.

A replicated PostgreSQL is reached as libpq does it: ``DATABASE_URL`` names every
server (``postgresql://u@h1:5432,h2:5433/db?target_session_attrs=read-write``) and libpq
connects to the first that accepts writes. SQLAlchemy cannot parse several hosts in the
authority part (it reads ``5432,h2:5433`` as a port) but passes repeated ``host`` query
parameters to psycopg2 as libpq's ``host=h1,h2 port=5432,5433``: the same connection.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit


def hosts_as_query(url: str) -> str:
    """``scheme://user@h1:p1,h2:p2/db?q`` -> ``scheme://user@/db?host=h1:p1&host=h2:p2&q``.

    A URL with one host is returned unchanged.
    """
    parts = urlsplit(url)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    if "," not in hostlist:
        return url
    hosts = [h.strip() for h in hostlist.split(",") if h.strip()]
    query = "&".join(f"host={quote(h, safe='[]:')}" for h in hosts)
    if parts.query:
        query += "&" + parts.query
    netloc = f"{userinfo}@" if userinfo else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
