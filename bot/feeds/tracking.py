"""Links without their tracking parameters (utm_*, fbclid, gclid …), as feed readers such as
Miniflux strip them: the alert's link is the article's own, and one article reached under
several tracking URLs is one article."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_PREFIXES = ("utm_", "mtm_", "pk_", "_hs", "hsa_", "oly_")
_NAMES = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "ysclid", "twclid",
    "igshid", "mc_cid", "mc_eid", "mkt_tok", "_openstat", "_ga", "_gl", "vero_id", "wickedid",
    "rb_clickid", "s_cid", "ttclid", "li_fat_id", "ncid", "cmpid", "sr_share",
})


def _tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in _NAMES or lowered.startswith(_PREFIXES)


def strip_tracking(url: str) -> str:
    """`url` without tracking parameters in its query (and fragment, when it holds them)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not _tracking(k)]
    fragment = parts.fragment
    if "=" in fragment and any(_tracking(k) for k, _ in parse_qsl(fragment)):
        fragment = urlencode([(k, v) for k, v in parse_qsl(fragment, keep_blank_values=True)
                              if not _tracking(k)])
    if len(query) == len(parse_qsl(parts.query, keep_blank_values=True)) and \
            fragment == parts.fragment:
        return url  # nothing to strip: the link exactly as the feed wrote it
    return urlunsplit(parts._replace(query=urlencode(query), fragment=fragment))
