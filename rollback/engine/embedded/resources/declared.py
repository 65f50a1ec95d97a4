"""Live values put back into the shape the program declared them in.

Drift verification compares each declared input with the same key of `read`,
after only light normalisation (integral floats as ints, no null keys). AWS
reorders lists and fills nested blocks with defaults the program never set;
reporting those as drift would be false. So a live list holding exactly the
declared items comes back in the declared order, and a live nested block
comes back with only the declared keys. Anything that really differs stays
visible.
"""

from __future__ import annotations

from typing import Any


def in_declared_order(live: list[Any], declared: Any) -> list[Any]:
    """`live` with the declared items first, in the declared order, then the rest in live order."""
    if not isinstance(declared, list):
        return list(live)
    rest = list(live)
    ordered = []
    for item in declared:
        if item in rest:
            rest.remove(item)
            ordered.append(item)
    return ordered + rest


def declared_keys(live: dict[str, Any], declared: Any) -> dict[str, Any]:
    """`live` limited to the keys the program declared (all of `live` when nothing was declared)."""
    if not isinstance(declared, dict):
        return dict(live)
    return {key: live[key] for key in declared if key in live}


def declared_json(live: Any, declared: Any) -> Any:
    """A live JSON document (text or decoded) as the declared text when both mean the same.

    AWS re-serialises policies (key order, spacing, URL encoding): equal
    documents come back exactly as declared, different ones as compact JSON.
    """
    import json
    from urllib.parse import unquote

    if isinstance(live, str):
        try:
            live = json.loads(live)
        except ValueError:
            try:
                live = json.loads(unquote(live))
            except ValueError:
                return live
    if isinstance(declared, str):
        try:
            if json.loads(declared) == live:
                return declared
        except ValueError:
            pass
    return json.dumps(live, separators=(",", ":"), sort_keys=True)


def covers(live: Any, declared: Any) -> bool:
    """Whether `live` holds everything `declared` says, ignoring what AWS added (defaults).

    Dicts: every declared key is live and covered; lists: same length, item by
    item; numbers compare by value (the SDK sends floats, AWS answers ints).
    """
    if isinstance(declared, dict):
        return isinstance(live, dict) and all(
            k in live and covers(live[k], v) for k, v in declared.items() if v is not None
        )
    if isinstance(declared, list):
        return (
            isinstance(live, list)
            and len(live) == len(declared)
            and all(covers(a, b) for a, b in zip(live, declared, strict=True))
        )
    if isinstance(declared, bool) or isinstance(live, bool):
        return bool(live == declared)
    if isinstance(declared, int | float) and isinstance(live, int | float):
        return float(live) == float(declared)
    return bool(live == declared)
